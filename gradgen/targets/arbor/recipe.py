"""The one Arbor recipe gradgen runs: cable cells with probes, spike inputs and gap junctions.

Single gradient runs, homeostatic runs, CMA-ES populations and the geometry checks all
simulate unconnected cable cells; they differ only in which probes they sample, so they
share this recipe and its reset-and-resample loop instead of each writing Arbor's recipe
boilerplate again.
"""
from __future__ import annotations

from functools import cached_property
from typing import Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError

SampleKey = tuple[int, str]  # (gid, probe tag)


class CellsRecipe(arbor.recipe):
    """Cable cells, each with its own probes, event generators and gap junctions (no
    synaptic connections), one set of global properties, and a simulation that can be reset
    and run again with new samplers."""

    def __init__(self, cells: Sequence[arbor.cable_cell], props: arbor.cable_cell_global_properties,
                 probes: Sequence[Sequence] = (), generators: Sequence[Sequence[arbor.event_generator]] = (),
                 seed: int = 0, threads: int = 1,
                 gap_junctions: Sequence[Sequence[arbor.gap_junction_connection]] = ()):
        super().__init__()
        self._cells, self._props = list(cells), props
        self._probes = [list(p) for p in probes] or [[] for _ in self._cells]
        self._generators = [list(g) for g in generators] or [[] for _ in self._cells]
        self._gap_junctions = [list(g) for g in gap_junctions] or [[] for _ in self._cells]
        self._seed, self._threads = seed, threads
        self._handles: dict[SampleKey, int] = {}

    def num_cells(self) -> int:
        return len(self._cells)

    def cell_kind(self, gid):
        return arbor.cell_kind.cable

    def cell_description(self, gid):
        return self._cells[gid]

    def global_properties(self, kind):
        return self._props

    def probes(self, gid):
        return self._probes[gid]

    def event_generators(self, gid):
        return self._generators[gid]

    def gap_junctions_on(self, gid):
        return self._gap_junctions[gid]

    @cached_property
    def sim(self) -> arbor.simulation:
        return arbor.simulation(self, arbor.context(threads=self._threads), seed=self._seed)

    def sample_run(self, keys: Sequence[SampleKey], t_end: float, dt: float,
                   schedule: arbor.schedule_base | None = None) -> dict[SampleKey, int]:
        """Reset, sample the probes ``keys`` on ``schedule`` (default: every ``dt``), run;
        returns the sampler handles."""
        self.sim.reset()
        for handle in self._handles.values():
            self.sim.remove_sampler(handle)
        schedule = schedule or arbor.regular_schedule(0 * U.ms, dt * U.ms, t_end * U.ms)
        self._handles = {key: self.sim.sample(key, schedule) for key in keys}
        self.sim.run(t_end * U.ms, dt * U.ms)
        return self._handles

    def samples(self, key: SampleKey, what: str | None = None) -> np.ndarray:
        """The [time, value] samples of one probe of the last run (a single location)."""
        data = self.sim.samples(self._handles[key])
        if len(data) != 1:
            what = what or f"probe {key[1]!r} of cell {key[0]}"
            raise GradgenError(f"{what} must name exactly one location (got {len(data)})")
        return data[0][0]


def regular_schedule(sample_dt: float, t_end: float) -> arbor.schedule_base:
    """Samples every ``sample_dt`` ms in [0, t_end)."""
    return arbor.regular_schedule(0 * U.ms, sample_dt * U.ms, t_end * U.ms)


def run_and_sample(cells, probes, props, t_end: float, dt: float,
                   sample_every: float | None = None, times: Sequence[float] | None = None
                   ) -> dict[SampleKey, tuple[np.ndarray, np.ndarray]]:
    """Run cells once and return {(gid, tag): (t, values)}.

    ``probes[gid]`` is a list of (arbor probe, tag) pairs. (Spikes: with this plain recipe
    Arbor 0.12 recorded none in our tests, so callers count threshold crossings in traces.)
    """
    recipe = CellsRecipe(cells, props, [[p for p, _ in pl] for pl in probes])
    schedule = (arbor.explicit_schedule([t * U.ms for t in times]) if times is not None
                else arbor.regular_schedule((sample_every or dt) * U.ms))
    keys = [(gid, tag) for gid, plist in enumerate(probes) for _p, tag in plist]
    handles = recipe.sample_run(keys, t_end, dt, schedule)
    out = {}
    for key in keys:
        data = recipe.sim.samples(handles[key])
        if not data:
            raise GradgenError(f"probe {key} returned no data")
        arr = data[0][0]
        out[key] = (np.asarray(arr[:, 0]), np.asarray(arr[:, 1]))
    return out
