"""What NEURON's NMODL allows and Arbor's modcc does not, rewritten the same for the
translation and the gradient mechanism.

- modcc takes one NONSPECIFIC_CURRENT per mechanism (a second one is "undefined"): several
  (``ika``, ``ikad``) become the first, assigned their sum after every other statement;
  modcc's conductance of the sum is the sum of their conductances.
- Arbor passes one value (the connection weight) to NET_RECEIVE: of NEURON's weight vector
  (``NET_RECEIVE(weight, srcgid)``) only the argument the event reads is kept, and it
  receives the weight.
- Arbor sets a GLOBAL only through a derived name (``IKs/sha=2``), which reads ``IKs/k=1.5``
  as a renaming of the ion k: a GLOBAL named like one of the mechanism's ions cannot be a θ.
- modcc's lexer reads its functions and method names as tokens, not names: a mechanism
  called ``max`` (ModelDB 168858) cannot be compiled at all, so it is refused by name.
"""
from __future__ import annotations

from typing import Sequence

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.sensitivity.straight_line import Assignment


def nonspecific_currents(low: LoweredMechanism) -> list[str]:
    """The NONSPECIFIC_CURRENT modcc is given: the first, carrying all of them."""
    return low.mechanism.nonspecific_currents[:1]


def one_nonspecific_current(statements: Sequence[Assignment], low: LoweredMechanism
                            ) -> list[Assignment]:
    """The current statements with every nonspecific current summed into the first one."""
    names = low.mechanism.nonspecific_currents
    if len(names) < 2:
        return list(statements)
    parts = [s.expr for s in statements if s.target in names]
    rest = [s for s in statements if s.target not in names]
    return rest + [Assignment(names[0], sympy.Add(*parts))]


#: Mechanism names modcc 0.12 rejects ("invalid name for mechanism"), found by compiling a
#: SUFFIX of each of its function, method and keyword names in lower case (upper-case
#: NMODL keywords are refused by gradgen's parser already).
MODCC_RESERVED_NAMES = frozenset({
    "cnexp", "cos", "else", "exp", "exprelr", "fabs", "if", "log", "max", "min", "safeinv",
    "signum", "sin", "sparse", "sqrt", "step", "stochastic", "tanh"})


def check_name(mech) -> None:
    """Refuse a mechanism whose name modcc reads as one of its own tokens (see above)."""
    if mech.name in MODCC_RESERVED_NAMES:
        raise GradgenError(f"the mechanism name '{mech.name}' is a function or keyword of Arbor's "
                           "modcc, which cannot compile a mechanism of that name", mech.pos,
                           hint="rename the SUFFIX (or POINT_PROCESS) and where the model uses it")


def check_settable(low: LoweredMechanism, parameters: Sequence[str]) -> None:
    """Refuse a θ that is a GLOBAL named like one of the mechanism's ions (see above)."""
    ions = {ion.name for ion in low.mechanism.ions}
    for name in parameters:
        if name in ions and name not in low.mechanism.range_names:
            raise GradgenError(f"GLOBAL '{name}' of '{low.name}' cannot be a parameter: Arbor reads "
                               f"'{low.name}/{name}=…' as a renaming of the ion {name}",
                               low.mechanism.parameter(name).pos,
                               hint=f"declare it RANGE {name} in the NEURON block")


def event_arguments(low: LoweredMechanism) -> list[str]:
    """NET_RECEIVE's argument for Arbor: the one the event jumps read (else the first)."""
    args = low.event_args
    jumps = [*low.events.values(), *low.post_events.values()]
    used = [a for a in args if any(sympy.Symbol(a) in e.free_symbols for e in jumps)]
    if len(used) > 1:
        raise GradgenError(f"NET_RECEIVE reads {len(used)} arguments ({', '.join(used)}); Arbor passes "
                           "one weight per event", low.mechanism.net_receive.pos,
                           hint="read one argument, or use the NEURON target")
    return used or args[:1]


__all__ = ["MODCC_RESERVED_NAMES", "check_name", "check_settable", "event_arguments", "nonspecific_currents", "one_nonspecific_current"]
