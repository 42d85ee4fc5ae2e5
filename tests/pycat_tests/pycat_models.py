"""Small Arbor models shared by the pycat tests (real Arbor, no mocks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import arbor
import numpy as np
from arbor import units as U

import pycat


def leak_mechanism(name: str = "npleak") -> pycat.Mechanism:
    """A passive leak in numpy: I = g (V − e), g = ∂I/∂V."""

    def compute_currents(m: pycat.MechView) -> None:
        g = m.p.g
        m.add_current(g * (m.v - m.p.e), g=g)

    return pycat.Mechanism(name, parameters={"g": (0.001, "S/cm2"), "e": (-70.0, "mV")},
                           compute_currents=compute_currents)


def expsyn_mechanism(name: str = "npsyn", seen: dict | None = None) -> pycat.Mechanism:
    """Arbor's expsyn in numpy (a linear point process: Arbor may coalesce instances)."""

    def init(m: pycat.MechView) -> None:
        m.s.g = 0.0
        if seen is not None:
            seen["multiplicity"] = None if m.multiplicity is None else m.multiplicity.copy()
            seen["width"] = m.width

    def compute_currents(m: pycat.MechView) -> None:
        m.add_current(m.s.g * (m.v - m.p.e), g=m.s.g)

    def apply_events(m: pycat.MechView, events: pycat.Events) -> None:
        np.add.at(m.s.g, events.index, events.weight)

    def advance_state(m: pycat.MechView) -> None:
        ll = -m.dt / m.p.tau
        m.s.g = m.s.g * ((2.0 + ll) / (2.0 - ll))

    return pycat.Mechanism(name, kind="point", parameters={"tau": 2.0, "e": 0.0}, states=["g"],
                           init=init, compute_currents=compute_currents,
                           apply_events=apply_events, advance_state=advance_state, linear=True)


def cable(length: float = 100.0, radius: float = 1.0, n_seg: int = 1) -> arbor.morphology:
    tree = arbor.segment_tree()
    parent = arbor.mnpos
    for i in range(n_seg):
        x0, x1 = length * i / n_seg, length * (i + 1) / n_seg
        parent = tree.append(parent, arbor.mpoint(x0, 0, 0, radius), arbor.mpoint(x1, 0, 0, radius), tag=1)
    return arbor.morphology(tree)


@dataclass
class Cell:
    """One cell: morphology, decor and CV policy, plus what to probe and which events."""

    morphology: arbor.morphology
    decor: arbor.decor
    policy: Any
    probes: list = field(default_factory=list)
    events: list = field(default_factory=list)
    labels: arbor.label_dict | None = None


class Recipe(arbor.recipe):
    def __init__(self, cells: list[Cell], props: arbor.cable_global_properties):
        super().__init__()
        self.cells, self.props = cells, props

    def num_cells(self) -> int:
        return len(self.cells)

    def cell_kind(self, gid: int):
        return arbor.cell_kind.cable

    def cell_description(self, gid: int):
        c = self.cells[gid]
        return arbor.cable_cell(c.morphology, c.decor, c.labels or arbor.label_dict(), c.policy)

    def global_properties(self, kind):
        return self.props

    def probes(self, gid: int):
        return [p.address for p in self.cells[gid].probes]

    def event_generators(self, gid: int):
        return self.cells[gid].events


def simulate(cells: list[Cell], catalogue: arbor.catalogue, t_end: float, dt: float = 0.025,
             threads: int = 1, group_size: int = 1,
             props_hook: Callable[[arbor.cable_global_properties], None] | None = None,
             ) -> dict[tuple[int, str], np.ndarray]:
    """Run the cells; return {(gid, probe tag): samples[t, value]} for every probe."""
    props = arbor.neuron_cable_properties()
    props.catalogue = catalogue
    if props_hook:
        props_hook(props)
    rec = Recipe(cells, props)
    ctx = arbor.context(threads=threads)
    hint = arbor.partition_hint(cpu_group_size=group_size)
    dd = arbor.partition_load_balance(rec, ctx, {arbor.cell_kind.cable: hint})
    sim = arbor.simulation(rec, ctx, dd)
    sched = arbor.regular_schedule(0 * U.ms, dt * U.ms, t_end * U.ms)
    handles = {(gid, p.tag): sim.sample((gid, p.tag), sched)
               for gid, c in enumerate(cells) for p in c.probes}
    sim.run(t_end * U.ms, dt * U.ms)
    out = {}
    for key, h in handles.items():
        samples = sim.samples(h)
        assert len(samples) == 1, f"probe {key} returned {len(samples)} sample sets"
        data, _ = samples[0]
        out[key] = np.asarray(data)
    return out


class Probe:
    """A probe address with its tag kept at hand."""

    def __init__(self, address: Any, tag: str):
        self.address, self.tag = address, tag


def voltage(where: str, tag: str = "v") -> Probe:
    return Probe(arbor.cable_probe_membrane_voltage(where, tag), tag)


def state(where: str, mech: str, name: str, tag: str) -> Probe:
    return Probe(arbor.cable_probe_density_state(where, mech, name, tag), tag)
