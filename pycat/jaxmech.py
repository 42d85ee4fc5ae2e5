"""Turn a JAX :class:`~pycat.channel.Channel` into a pycat density mechanism.

Each method is one jitted call (pycat.packing): inputs are gathered from the numpy views
into one array, outputs written back into Arbor's buffers. JAX arrays never alias Arbor
memory: XLA may not write in place into buffers it does not own.

Fusion (default): the step kernel of advance_state also evaluates the currents at the new
voltage and states, which is exactly what the next compute_currents needs unless an
input changed in between (an ion's reversal potential or concentration written by
another mechanism, the temperature). compute_currents compares those inputs with the
ones the step used and books the precomputed currents when they are equal, else it runs
its own kernel. So a step normally costs one JAX call, with identical results.
"""
from __future__ import annotations

from typing import Any

from .channel import Channel
from .mechanism import Mechanism
from .packing import PackedKernel, input_rows, plan_for, run_packed
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


def jax_mechanism(ch: Channel, name: str | None = None, fuse: bool = True) -> Mechanism:
    """A pycat density mechanism running ``ch``; ``name`` defaults to the channel's."""
    mech = Mechanism(name or ch.name, **channel_mechanism_fields(ch))
    rows = input_rows(mech)
    state_rows = [f"s.{k}" for k in ch.states]
    current_rows = ["i", "g", *[f"ion_i.{i.name}" for i in ch.ions]]
    # what the currents read besides the mechanism's own states and parameters
    check_rows = [r for r in rows if r == "v" or r.startswith("c.")]

    def currents(v, s, p, c) -> dict:
        total, ions = ch.currents(v, s, p, c)
        out = {"i": total, "g": ch.conductance(v, s, p, c)}
        for ion in ch.ions:
            out[f"ion_i.{ion.name}"] = ions.get(ion.name, 0.0)
        return out

    def init_fn(d):
        v, _, p, c = split_inputs(ch, d)
        s0 = ch.initial(v, p, c)
        return {**{f"s.{k}": s0[k] for k in ch.states}, **currents(v, s0, p, c)}

    def currents_fn(d):
        v, s, p, c = split_inputs(ch, d)
        return currents(v, s, p, c)

    def step_fn(d):
        v, s, p, c = split_inputs(ch, d)
        s1 = ch.step(v, s, p, c, d["dt"])
        out = {f"s.{k}": s1[k] for k in ch.states}
        return {**out, **currents(v, s1, p, c)} if fuse else out

    k_init = PackedKernel(init_fn, rows, state_rows + current_rows)
    k_curr = PackedKernel(currents_fn, rows, current_rows)
    k_step = PackedKernel(step_fn, rows, state_rows + (current_rows if fuse else []))

    def remember(view: MechView, kernel: PackedKernel) -> None:
        """Run a state kernel; keep its currents for the next compute_currents."""
        plan = plan_for(view, mech, kernel)
        plan.call()
        plan.scatter(currents=False)
        key = ("check", id(kernel))
        if key not in view.cache:
            view.cache[key] = plan.compare_ops(check_rows)
        view.cache["pending"] = (plan, view.cache[key])

    def init(view: MechView) -> None:
        if view.width:
            remember(view, k_init)

    def compute_currents(view: MechView) -> None:
        pending = view.cache.pop("pending", None)
        if pending is not None and pending[0].inputs_unchanged(pending[1]):
            pending[0].scatter(states=False)
        else:
            run_packed(view, mech, k_curr)

    def advance_state(view: MechView) -> None:
        if not view.width:
            return
        if fuse:
            remember(view, k_step)
        elif ch.states:
            run_packed(view, mech, k_step)

    mech.init, mech.compute_currents, mech.advance_state = init, compute_currents, advance_state
    return mech
