"""A channel written as pure, per-instance JAX functions.

The functions see one instance: scalars ``v`` [mV], dicts ``s`` (states), ``p``
(parameters) and ``c`` (what the channel reads from outside: ``celsius`` and, per declared
ion X, ``eX``, ``Xi``, ``Xo``, ``Xd``). pycat vectorises them with ``jax.vmap``, jits each
mechanism method into one call, and differentiates them with ``jax.jacfwd`` for gradient
mechanisms (pycat.grad).

The state step is either ``update(v, s, p, c, dt)`` (an explicit discrete map) or
``derivative(v, s, p, c)`` (ds/dt). A derivative is integrated like modcc's ``cnexp``:
per state, s' = a·s + b with a = ∂f/∂s and b = f at s = 0, evaluated at the new voltage,
then s ← (s + b/a)·(2 + a·dt)/(2 − a·dt) − b/a (Padé(1,1)). This is exact for the
linear-in-own-state equations cnexp accepts and reproduces Arbor's arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from .errors import PycatError
from .mechanism import Ion

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)

Scalar = Any
Dict = dict[str, Any]


def exprelr(x: Scalar) -> Scalar:
    """x / (exp(x) − 1), 1 at x = 0 (as Arbor's math::exprelr), safe to differentiate."""
    small = 1.0 == 1.0 + x
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0, xs / jnp.expm1(xs))


def ion_inputs(ions: Sequence[Ion]) -> list[tuple[str, str, str]]:
    """(key in c, ion name, IonView array name) for every ion quantity the channel reads."""
    out = []
    for ion in ions:
        if ion.read_rev:
            out.append((f"e{ion.name}", ion.name, "e"))
        if ion.read_int:
            out.append((f"{ion.name}i", ion.name, "xi"))
        if ion.read_ext:
            out.append((f"{ion.name}o", ion.name, "xo"))
        if ion.diffusive:
            out.append((f"{ion.name}d", ion.name, "xd"))
    return out


@dataclass(frozen=True)
class Channel:
    """A density channel as JAX functions; see the module docstring for the signatures.

    ``current`` returns the current density [mA/cm²]: a scalar (non-specific) or a dict
    ``{ion name: current, "": non-specific}``; ion currents are also booked on the ion.
    """

    name: str
    parameters: Mapping[str, float]
    states: Sequence[str]
    current: Callable[..., Any]
    init: Callable[..., Dict]
    derivative: Callable[..., Dict] | None = None
    update: Callable[..., Dict] | None = None
    ions: Sequence[Ion] = ()
    units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.derivative is None) == (self.update is None):
            raise PycatError(f"channel '{self.name}': give exactly one of derivative= or update=")
        if not self.states and self.derivative is not None:
            raise PycatError(f"channel '{self.name}': a derivative needs states")

    # -- per-instance building blocks (scalars) -------------------------------------------
    def currents(self, v: Scalar, s: Dict, p: Dict, c: Dict) -> tuple[Scalar, Dict]:
        """(total current, {ion: current}) for one instance."""
        out = self.current(v, s, p, c)
        if not isinstance(out, Mapping):
            return out, {}
        ions = {k: val for k, val in out.items() if k}
        unknown = set(ions) - {i.name for i in self.ions}
        if unknown:
            raise PycatError(f"channel '{self.name}': current for undeclared ion(s) {sorted(unknown)}")
        total = sum(out.values())
        return total, ions

    def total_current(self, v: Scalar, s: Dict, p: Dict, c: Dict) -> Scalar:
        return self.currents(v, s, p, c)[0]

    def conductance(self, v: Scalar, s: Dict, p: Dict, c: Dict) -> Scalar:
        """g = ∂I/∂V at fixed states: what Arbor's solver linearises with [S/cm²]."""
        return jax.grad(self.total_current, argnums=0)(v, s, p, c)

    def step(self, v: Scalar, s: Dict, p: Dict, c: Dict, dt: Scalar) -> Dict:
        """The discrete state update s⁺ = Φ(s, v, p, dt), v the new voltage."""
        if self.update is not None:
            return self._check_states(self.update(v, s, p, c, dt), "update")
        f = self.derivative
        out = {}
        for name in self.states:
            fj = lambda x, name=name: self._check_states(f(v, {**s, name: x}, p, c), "derivative")[name]
            b = fj(jnp.zeros_like(s[name]))
            a = jax.grad(fj)(s[name])
            ba = b / a
            ll = a * dt
            out[name] = (s[name] + ba) * ((2.0 + ll) / (2.0 - ll)) - ba
        return out

    def initial(self, v: Scalar, p: Dict, c: Dict) -> Dict:
        return self._check_states(self.init(v, p, c), "init")

    def _check_states(self, out: Any, what: str) -> Dict:
        if not isinstance(out, Mapping) or set(out) != set(self.states):
            got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
            raise PycatError(f"channel '{self.name}': {what} must return a dict of the states "
                             f"{list(self.states)}, got {got}")
        return dict(out)
