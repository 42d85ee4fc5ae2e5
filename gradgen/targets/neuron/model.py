"""The NEURON runtime: a converted directory's library in this process, applied to sections.

A model is built the NEURON way (sections, ``insert``, RANGE values); :meth:`NeuronModel.swap`
replaces the original mechanisms by their gradient versions in place (keeping every
parameter value the model set), paints the weights of θ, inserts the hub and, for the
shadow carrier, builds the shadow cells (:mod:`.shadow`); :meth:`NeuronModel.run` records
V and u_k = dV/dθ_k at chosen segments. NEURON cannot unload a
library, so one process holds one gradgen library; a second, different one is refused.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gradgen.errors import GradgenError
from gradgen.manifest import Manifest
from gradgen.params import ParamRef
from gradgen.protocol import (
    HUB_NAME,
    NEURON_CAPACITANCE,
    NEURON_RESISTIVITY,
    SHADOW_MECHANISM,
    carrier_ion,
    concentration,
    original_name,
    weight,
)
from gradgen.targets.neuron.build import build_directory
from gradgen.targets.neuron.point_processes import kind_of, points_on, swap_points
from gradgen.targets.neuron.shadow import ShadowCells

_LOADED: dict[str, Path] = {}  # "library" -> the one gradgen library of this process


def neuron_h() -> Any:
    """NEURON's ``h`` with the standard run system (a one-line error when NEURON is missing)."""
    try:
        from neuron import h
    except ImportError:
        raise GradgenError("NEURON is not installed", hint="pip install 'gradgen[neuron]'") from None
    h.load_file("stdrun.hoc")
    return h


def _mechanism_order(h: Any) -> list[str]:
    """Density mechanisms and point processes in NEURON's registration order (its type numbers)."""
    typed = []
    for point in (0, 1):
        types = h.MechanismType(point)
        for i in range(int(types.count())):
            types.select(i)
            name = h.ref("")
            types.selected(name)
            typed.append((int(types.internal_type()), name[0]))
    return [name for _, name in sorted(typed)]


def load_library(library: Path) -> Any:
    """Load a built library once per process; returns ``h``."""
    h = neuron_h()
    if "library" in _LOADED:
        if _LOADED["library"] != library:
            raise GradgenError(f"another gradgen library is loaded in this process ({_LOADED['library']})",
                               hint="NEURON cannot unload mechanisms: use one converted directory per process")
        return h
    if not h.nrn_load_dll(str(library)):
        raise GradgenError(f"NEURON could not load {library}")
    _LOADED["library"] = library
    return h


#: NEURON warns once per inserted section that two mechanisms write the same concentration;
#: the accumulator ions are written by every contributor by design (their sums compose).
_SHARED_WRITE = re.compile(r"is being written at the same location by|^\s*near line|^\s*\^\s*$|^\s*objref hoc_obj")


@contextlib.contextmanager
def _without_shared_write_warnings():
    """Hide NEURON's shared-write warnings (written to the C-level stdout/stderr) and pass
    every other line through."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as capture:
        for fd in (1, 2):
            os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines()
                    if not _SHARED_WRITE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def get_value(h: Any, seg: Any, mechanism: str, parameter: str) -> float:
    """A mechanism parameter at a segment: its RANGE value, or the GLOBAL ``parameter_mechanism``."""
    mech = getattr(seg, mechanism)
    return getattr(mech, parameter) if hasattr(mech, parameter) else getattr(h, f"{parameter}_{mechanism}")


def set_value(h: Any, seg: Any, mechanism: str, parameter: str, value: float) -> None:
    """Set a RANGE value at ``seg`` (or the GLOBAL, for every segment)."""
    mech = getattr(seg, mechanism)
    if hasattr(mech, parameter):
        setattr(mech, parameter, value)
    else:
        setattr(h, f"{parameter}_{mechanism}", value)


@dataclass
class Traces:
    """Sampled results: ``t`` (ms), ``v[site, time]`` (mV), ``u[site, k, time]`` (mV per unit of θ_k)."""

    t: np.ndarray
    v: np.ndarray
    u: np.ndarray


class IonCarriers:
    """The ion carrier: u_k is the inside concentration of θ_k's carrier ion at the segment."""

    lag = 0

    def reference(self, seg: Any, k: int) -> Any:
        return getattr(seg, f"_ref_{concentration(carrier_ion(k))}")


#: point processes that add no conductance to the membrane (a current independent of V
#: and θ): a shadow or ion carrier needs nothing from them
_INDEPENDENT_SOURCES = {"IClamp"}


class NeuronModel:
    """A converted directory, built and loaded into this process's NEURON."""

    def __init__(self, directory: Path, manifest: Manifest, h: Any):
        self.directory, self.manifest, self.h = directory, manifest, h
        self.shadows: list[ShadowCells] = []
        self.points: list[Any] = []  # gradient point processes and their NetCons, kept alive

    @property
    def params(self) -> list[ParamRef]:
        """θ as :class:`~gradgen.params.ParamRef`, in the carriers' order."""
        return self.manifest.refs

    @property
    def defaults(self) -> dict[str, float | None]:
        return self.manifest.defaults

    @staticmethod
    def load(directory: Path | str) -> "NeuronModel":
        directory = Path(directory)
        manifest = Manifest.load(directory)
        h = load_library(build_directory(directory))
        order = _mechanism_order(h)
        hub_last = manifest.scheme == "shadow"  # it runs first in the state updates
        if any((order.index(HUB_NAME) < order.index(m.gradient)) == hub_last
               for m in manifest.mechanisms if not m.bystander):
            raise GradgenError("the hub is registered on the wrong side of a gradient mechanism",
                               hint="build with gradgen.targets.neuron.build")
        for m in manifest.mechanisms:
            # A TABLE is an optimisation the gradient version drops (it computes the rates
            # exactly); the reference original computes them exactly too.
            if hasattr(h, f"usetable_{original_name(m.original)}"):
                setattr(h, f"usetable_{original_name(m.original)}", 0)
        return NeuronModel(directory, manifest, h)

    def swap(self, sections: Iterable[Any] | None = None,
             regions: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Replace originals (``x`` or its :func:`~gradgen.protocol.original_name`) by their
        gradient versions, keeping their parameter values; paint θ's weights (a region names
        a list of sections in ``regions``); insert the hub (for the ion carrier with each
        segment's cm and Ra) and, for the shadow carrier, build the cells' shadow copies."""
        if sections is None:  # every cell, not the shadow copies of earlier swaps
            sections = [s for s in self.h.allsec() if not s.has_membrane(SHADOW_MECHANISM)]
        sections = list(sections)
        with _without_shared_write_warnings():
            self._swap(sections)
        self.paint_weights(sections, regions or {})
        if self.manifest.scheme == "shadow":
            self.shadows.append(ShadowCells(self.h, sections, len(self.manifest.parameters)))

    def release(self) -> None:
        """Delete the shadow cells of every swap (before their cells are deleted)."""
        for shadow in self.shadows:
            shadow.release()
        self.shadows.clear()

    def carriers(self) -> IonCarriers | ShadowCells:
        if self.manifest.scheme != "shadow":
            return IonCarriers()
        if len(self.shadows) != 1:
            raise GradgenError(f"{len(self.shadows)} instrumented cell sets: run() records from one",
                               hint="swap all cells in one call, or release() the others")
        return self.shadows[0]

    def _swap(self, sections: list[Any]) -> None:
        known = {HUB_NAME} | {n for m in self.manifest.mechanisms
                              for n in (m.original, m.gradient, original_name(m.original))}
        chosen = {sec.name() for sec in sections}
        for sec in sections:  # all checked before any is changed
            tree = self.h.SectionList()
            tree.wholetree(sec=sec)
            missing = sorted(s.name() for s in tree if s.name() not in chosen)
            if missing:  # u_k would not flow into them, though V does
                raise GradgenError(f"section {sec.name()} is connected to sections that are not instrumented "
                                   f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})",
                                   hint="instrument whole cells")
            unknown = sorted({m.name() for seg in sec for m in seg if not m.name().endswith("_ion")} - known)
            unknown += sorted({kind_of(p) for seg in sec for p in seg.point_processes()}
                              - _INDEPENDENT_SOURCES - known)
            if unknown:  # its conductance and states would be missing from every u_k
                raise GradgenError(f"section {sec.name()} has mechanism(s) {', '.join(unknown)} without a "
                                   "gradient version", hint="convert their .mod files too")
        for entry in self.manifest.mechanisms:
            if entry.kind == "point":
                for present in {entry.original, original_name(entry.original)} - {entry.gradient}:
                    self.points += swap_points(self.h, sections, present, entry.gradient, entry.parameters)
        for sec in sections:
            for entry in self.manifest.mechanisms:
                for present in (entry.original, original_name(entry.original)):
                    if entry.kind == "point" or not sec.has_membrane(present):
                        continue
                    kept = [{p: get_value(self.h, seg, present, p) for p in entry.parameters} for seg in sec]
                    sec.uninsert(present)
                    sec.insert(entry.gradient)
                    for seg, values in zip(sec, kept):
                        for key, value in values.items():
                            set_value(self.h, seg, entry.gradient, key, value)
            sec.insert(HUB_NAME)
            if self.manifest.scheme == "shadow":
                continue
            for seg in sec:
                hub = getattr(seg, HUB_NAME)
                setattr(hub, NEURON_CAPACITANCE, seg.cm)
                setattr(hub, NEURON_RESISTIVITY, sec.Ra)

    def paint_weights(self, sections: Sequence[Any], regions: Mapping[str, Sequence[Any]]) -> None:
        by_original = self.manifest.by_original()
        for k, p in enumerate(self.manifest.parameters):
            if p.region is not None and p.region not in regions:
                raise GradgenError(f"parameter '{p.name}': no region '{p.region}'",
                                   hint="pass regions={name: [sections]}")
            where = set(regions[p.region]) if p.region else None  # NEURON makes a new wrapper per lookup: not id()
            gradient = by_original[p.mechanism].gradient
            if by_original[p.mechanism].kind == "point":
                for point in points_on([s for s in sections if where is None or s in where], gradient):
                    setattr(point, weight(k), 1.0)
                continue
            for sec in sections:
                if sec.has_membrane(gradient) and (where is None or sec in where):
                    for seg in sec:
                        setattr(getattr(seg, gradient), weight(k), 1.0)

    def run(self, sites: Sequence[Any], tstop: float, dt: float, v_init: float = -65.0,
            gradients: bool = True) -> Traces:
        """Fixed-step run (NEURON's backward Euler); V and, with ``gradients``, every u_k at ``sites``."""
        n_params = len(self.manifest.parameters) if gradients else 0
        if n_params:
            self._check_reversals()
        return simulate(self.h, sites, tstop, dt, v_init, n_params, self.carriers() if n_params else None)


    def _check_reversals(self) -> None:
        """Refuse a coupled ion whose reversal NEURON recomputes from its concentration
        (Nernst: NEURON's default where a mechanism writes the concentration), a path of
        dV/dθ the gradient mechanisms do not carry."""
        sections = self.shadows[0].sections if self.shadows else []
        for c in self.manifest.coupling.concentrations:
            ion = f"{c[:-1]}_ion"
            for sec in sections:
                if sec.has_membrane(ion) and int(self.h.ion_style(ion, sec=sec)) & _REVERSAL_FROM_CONCENTRATION:
                    raise GradgenError(f"section {sec.name()}: NEURON computes e{c[:-1]} from {c} (Nernst), a path "
                                       "the gradients do not carry",
                                       hint=f'hold it after swap(): h.ion_style("{ion}", 3, 2, 0, 0, 1, sec=sec)')


#: ion_style bits for "reversal initialised and advanced from the concentrations" (measured in
#: NEURON 9.0.2: 0o367 after inserting a concentration writer, 0o227 after
#: ion_style(ion, 3, 2, 0, 0, 1))
_REVERSAL_FROM_CONCENTRATION = 0o140


def simulate(h: Any, sites: Sequence[Any], tstop: float, dt: float, v_init: float = -65.0,
             n_params: int = 0, carriers: IonCarriers | ShadowCells | None = None) -> Traces:
    """Run ``h`` at fixed step ``dt``, recording V and the first ``n_params`` carriers at
    ``sites``. A carrier that lags V by a step (the shadow cells) runs that step more."""
    h.load_file("stdrun.hoc")
    h.cvode_active(0)
    h.secondorder = 0
    h.dt = dt
    h.steps_per_ms = 1.0 / dt
    if n_params and carriers is None:
        raise ValueError("recording carriers needs the model's carriers (NeuronModel.carriers())")
    lag = carriers.lag if n_params else 0
    t = h.Vector().record(h._ref_t)
    vs = [h.Vector().record(seg._ref_v) for seg in sites]
    us = [[h.Vector().record(carriers.reference(seg, k)) for k in range(n_params)] for seg in sites]
    try:
        h.finitialize(v_init)
        h.continuerun(tstop + lag * dt)  # the standard run system's loop: what a NEURON user's h.run() does
    except RuntimeError as error:  # hoc_execerror: NEURON stops the run (a Newton solve that fails, …)
        reason = str(error).removeprefix("hocobj_call error: ").strip()
        raise GradgenError(f"NEURON stopped the run at t = {float(h.t):g} ms: {reason}",
                           hint="NEURON itself cannot integrate this model at this step; "
                                "a scopmath error is often derivimplicit's Newton failing") from None
    steps = int(round(tstop / dt))
    if len(t) != steps + 1 + lag:
        raise GradgenError(f"NEURON took {len(t) - 1 - lag} steps of {dt} ms to reach {tstop} ms",
                           hint="choose tstop as a multiple of dt")
    v = np.array([np.array(x)[:steps + 1] for x in vs])
    u = (np.array([[np.array(x)[lag:lag + steps + 1] for x in row] for row in us]) if n_params
         else np.zeros((len(sites), 0, v.shape[1])))
    return Traces(np.array(t)[:steps + 1], v, u)
