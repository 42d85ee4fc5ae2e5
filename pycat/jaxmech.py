"""Turn a JAX :class:`~pycat.channel.Channel` into a pycat density mechanism.

Each Arbor method is one jitted call (pycat.packing): inputs are gathered from the numpy
views into one array, outputs written back into Arbor's buffers. JAX arrays never alias
Arbor memory: XLA may not write in place into buffers it does not own.
"""
from __future__ import annotations

from typing import Any

from .channel import Channel
from .mechanism import Mechanism
from .packing import PackedKernel, input_rows, run_packed
from .views import MechView


def split_inputs(ch: Channel, d: dict[str, Any]) -> tuple[Any, dict, dict, dict]:
    """(v, s, p, c) of one instance from its packed row dict."""
    s = {k: d[f"s.{k}"] for k in ch.states}
    p = {k: d[f"p.{k}"] for k in ch.parameters}
    c = {k[2:]: val for k, val in d.items() if k.startswith("c.")}
    return d["v"], s, p, c


def channel_mechanism_fields(ch: Channel) -> dict[str, Any]:
    """Mechanism() keyword arguments describing a channel's parameters, states and ions."""
    return dict(
        kind="density",
        parameters={n: (float(d), ch.units.get(n, "")) for n, d in ch.parameters.items()},
        states=list(ch.states),
        ions=list(ch.ions),
    )


def jax_mechanism(ch: Channel, name: str | None = None) -> Mechanism:
    """A pycat density mechanism running ``ch``; ``name`` defaults to the channel's."""
    mech = Mechanism(name or ch.name, **channel_mechanism_fields(ch))
    rows = input_rows(mech)
    states = [f"s.{k}" for k in ch.states]
    ion_rows = [f"ion_i.{i.name}" for i in ch.ions]

    def init_fn(d):
        v, _, p, c = split_inputs(ch, d)
        s0 = ch.initial(v, p, c)
        return {f"s.{k}": s0[k] for k in ch.states}

    def currents_fn(d):
        v, s, p, c = split_inputs(ch, d)
        total, ions = ch.currents(v, s, p, c)
        out = {"i": total, "g": ch.conductance(v, s, p, c)}
        for ion in ch.ions:
            out[f"ion_i.{ion.name}"] = ions.get(ion.name, 0.0)
        return out

    def step_fn(d, dt):
        v, s, p, c = split_inputs(ch, d)
        s1 = ch.step(v, s, p, c, dt)
        return {f"s.{k}": s1[k] for k in ch.states}

    k_init = PackedKernel(init_fn, rows, states)
    k_curr = PackedKernel(currents_fn, rows, ["i", "g", *ion_rows])
    k_step = PackedKernel(step_fn, rows, states, n_extra=1)

    def init(view: MechView) -> None:
        if ch.states:
            run_packed(view, mech, k_init)

    def compute_currents(view: MechView) -> None:
        run_packed(view, mech, k_curr)

    def advance_state(view: MechView) -> None:
        if ch.states:
            run_packed(view, mech, k_step, view.dt)

    mech.init, mech.compute_currents, mech.advance_state = init, compute_currents, advance_state
    return mech
