"""The reference cells of checks, tests and benchmarks, built with Arbor's own calls.

The uniform HH test cable of ``gradgen check``, the HH axon with its soma (the shared
benchmark cell), any morphology or SWC file with mechanisms everywhere, and the
geometries of the geometry-transform acceptance tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.nmodl.parser import parse_file
from gradgen.targets.arbor.decor import CellSpec, Decor, GapJunction, SpikeInput
from gradgen.targets.arbor.geometry.layout import branch_geometries
from gradgen.targets.arbor.swc_check import check_swc


def cable_cell_spec(mechanisms: list[str], length: float = 500.0, radius: float = 0.5,
                    n_cv: int = 50, stimulus_nA: float = 0.1, t_on: float = 10.0,
                    t_off: float | None = None, labels: dict[str, str] | None = None) -> CellSpec:
    """A uniform cable with the mechanisms on all of it and a current step at x = 0.

    ``labels`` adds region labels (e.g. proximal/distal halves).
    """
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, radius), arbor.mpoint(length, 0, 0, radius), tag=1)
    return morphology_cell_spec(arbor.morphology(tree), arbor.label_dict(labels or {}),
                                arbor.cv_policy_fixed_per_branch(n_cv), mechanisms, stimulus_nA,
                                t_on, t_off)


#: The HH axon with its soma (shared benchmark cell): soma CV 20 µm × r 10 µm, 10 axon CVs
#: of 40 µm × r 0.5 µm; sites at the soma and the axon tip.
HH_AXON_SITES = ["(location 0 0)", "(location 0 1)"]


def _straight(tree, parent, x0, x1, r0, r1, tag, y=0.0):
    return tree.append(parent, arbor.mpoint(x0, y, 0, r0), arbor.mpoint(x1, y, 0, r1), tag=tag)


def _explicit(points: Sequence[tuple[int, float]]) -> arbor.cv_policy:
    locs = " ".join(f"(location {b} {float(x)!r})" for b, x in points)
    return arbor.cv_policy_explicit(f"(join {locs} (locset-nil))")


def hh_axon_geometry(labels: dict[str, str] | None = None
                     ) -> tuple[arbor.morphology, arbor.label_dict, arbor.cv_policy]:
    """The HH axon with its soma: morphology, labels (soma, axon, tip, plus ``labels``) and
    its CV policy (the soma one CV, the axon 10 CVs)."""
    tree = arbor.segment_tree()
    soma = _straight(tree, arbor.mnpos, 0, 20, 10, 10, 1)
    _straight(tree, soma, 20, 420, 0.5, 0.5, 2)
    all_labels = {"soma": "(tag 1)", "axon": "(tag 2)", "tip": "(terminal)", **(labels or {})}
    return (arbor.morphology(tree), arbor.label_dict(all_labels),
            _explicit([(0, (20 + 40 * k) / 420) for k in range(10)]))


def hh_axon_spec(t_end: float, stimulus_nA: float = 0.2, mechanisms: list[str] | None = None,
                 labels: dict[str, str] | None = None) -> CellSpec:
    """The HH axon with its soma, hh everywhere, ``stimulus_nA`` into the soma from 10 ms to
    t_end − 40 ms (the benchmark protocol); ``labels`` adds region labels."""
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    for mech in mechanisms or ["hh"]:
        decor.paint("(all)", arbor.density(mech))
    t_off = max(t_end - 40.0, 0.6 * t_end)
    decor.place("(location 0 0.023809523809523808)",  # soma centre
                arbor.i_clamp(10 * U.ms, (t_off - 10) * U.ms, stimulus_nA * U.nA))
    morphology, all_labels, policy = hh_axon_geometry(labels)
    return CellSpec(morphology, decor, all_labels, policy)


def morphology_cell_spec(morphology: arbor.morphology, labels: arbor.label_dict,
                         cv_policy: arbor.cv_policy | None, mechanisms: list[str],
                         stimulus_nA: float = 0.2, t_on: float = 10.0,
                         t_off: float | None = None) -> CellSpec:
    """Any morphology with the mechanisms on all of it and a current step at the root."""
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    for mech in mechanisms:
        decor.paint("(all)", arbor.density(mech))
    duration = (t_off if t_off is not None else 1e9) - t_on
    decor.place("(root)", arbor.i_clamp(t_on * U.ms, duration * U.ms, stimulus_nA * U.nA))
    return CellSpec(morphology, decor, labels, cv_policy)


def swc_cell_spec(path: str | Path, mechanisms: list[str], stimulus_nA: float = 0.2,
                  cv_policy: arbor.cv_policy | None = None) -> CellSpec:
    """An SWC reconstruction (Arbor's loader; regions soma/axon/dend/apic from the SWC tags)
    with the mechanisms everywhere and a current step into the root."""
    path = Path(path)
    if not path.is_file():
        raise GradgenError(f"{path}: no such morphology file", hint="give an .swc file")
    check_swc(path)
    try:
        loaded = arbor.load_swc_arbor(str(path))
    except RuntimeError as error:
        raise GradgenError(f"{path}: cannot read the SWC morphology: {error}",
                           hint="check the file against the SWC format") from None
    return morphology_cell_spec(loaded.morphology, loaded.labels, cv_policy, mechanisms,
                                stimulus_nA)


#: Probe sites of the test cable: both ends.
CABLE_SITES = ["(location 0 0)", "(location 0 1)"]
#: Ions of Arbor's default properties; others (Arbor's generic ``x``) are declared by the check.
DEFAULT_IONS = ("na", "k", "ca")
POINT_WEIGHT = 0.005  # µS per event to a point process under test
POINT_EVERY_MS = 5.0  # a spike every 5 ms from 2 ms
DETECTOR_THRESHOLD_MV = -10.0  # a spike of the cell, for mechanisms with POST_EVENT
#: A junction under test joins these two points of the test cable (both directions), with a
#: connection weight that keeps its explicit peer term stable: gj.g = 1 µS alone would be
#: g·dt/C ≈ 8 per step on a 10 µm CV of the r 0.5 µm cable at dt 0.0025.
JUNCTION_SITES = ("(location 0 0.1)", "(location 0 0.9)")
JUNCTION_WEIGHT = 0.002
#: A voltage process under test acts on the middle fifth of the test cable (whole CVs),
#: between the stimulus at one end and the far probe site.
VOLTAGE_REGION = "(cable 0 0.4 0.6)"


def check_cell(model, stimulus_nA: float, t_end: float, morphology: str | Path | None = None
               ) -> tuple[CellSpec, list[str]]:
    """The cell of ``gradgen check`` for a converted model, and its two probe sites.

    The uniform test cable (or an SWC file) with every density mechanism everywhere, every
    point process at the middle of the cable (the root of a morphology) driven by a spike
    train (and a spike detector there when one has a POST_EVENT block), every junction
    joining two points of the cable, every voltage process on the middle of the cable, a
    mechanism writing a reversal potential as its ion's method, Arbor's nernst method for an
    ion whose internal concentration a mechanism integrates (:func:`nernst_followed_ions`),
    and the ion species the mechanisms use that Arbor does not know (with a
    diffusivity where they use ``xd``).
    """
    parsed = {name: parse_file(m.source) for name, m in model.mechanisms.items()}
    # a mechanism writing a reversal potential is the ion's method, not a density
    methods = {name: ion.name for name, mech in parsed.items() for ion in mech.ions
               if f"e{ion.name}" in ion.write}
    densities = [name for name, m in model.mechanisms.items() if m.kind == "density" and name not in methods]
    points = [name for name, m in model.mechanisms.items() if m.kind == "point"]
    junctions = [name for name, m in model.mechanisms.items() if m.kind == "junction"]
    voltage_processes = [name for name, m in model.mechanisms.items() if m.kind == "voltage"]
    if morphology is not None:
        spec = swc_cell_spec(morphology, densities, stimulus_nA)
        sites, where = near_far_sites(spec.morphology), "(root)"
    else:
        spec = cable_cell_spec(densities, stimulus_nA=stimulus_nA)
        sites, where = list(CABLE_SITES), "(location 0 0.5)"
    times = [2.0 + POINT_EVERY_MS * i for i in range(int(t_end // POINT_EVERY_MS))]
    for i, name in enumerate(points):
        spec.decor.place(where, arbor.synapse(name), f"point{i}")
        spec.inputs.append(SpikeInput(f"point{i}", times, POINT_WEIGHT))
    for name in voltage_processes:
        spec.decor.paint(VOLTAGE_REGION, arbor.voltage_process(name))
    for i, name in enumerate(junctions):
        near, far = f"junction{i}a", f"junction{i}b"
        spec.decor.place(JUNCTION_SITES[0], arbor.junction(name), near)
        spec.decor.place(JUNCTION_SITES[1], arbor.junction(name), far)
        spec.gap_junctions += [GapJunction(near, far, JUNCTION_WEIGHT), GapJunction(far, near, JUNCTION_WEIGHT)]
    if any(mech.post_event is not None for mech in parsed.values()):  # spikes of the cell reach them
        spec.decor.place(where, arbor.threshold_detector(DETECTOR_THRESHOLD_MV * U.mV), "spike")
    for mech in parsed.values():
        for ion in mech.ions:
            if ion.name in DEFAULT_IONS:
                continue
            settings = spec.ions.setdefault(ion.name, {
                "valence": ion.valence or 1, "int_con": 1 * U.mM, "ext_con": 1 * U.mM,
                "rev_pot": 0 * U.mV})
            if f"{ion.name}d" in ion.read + ion.write:
                settings["diff"] = 1e-9 * U.m2 / U.s
    for name, ion in methods.items():
        spec.decor.set_ion(ion, method=arbor.mechanism(name))
    for ion in nernst_followed_ions(model, parsed) - set(methods.values()):
        spec.decor.set_ion(ion, method=f"nernst/x={ion}")
    return spec, sites


def nernst_followed_ions(model, parsed: dict) -> set[str]:
    """Ions whose internal concentration a converted mechanism integrates as a STATE: the
    check cell gives them Arbor's nernst method, as NEURON computes the reversal potential of
    an ion whose concentration a mechanism writes, so that a Ca pool's θ reach V through the
    eca its partner channel reads. Not where the gradient could not follow (a bystander
    writes it, or the external concentration is a STATE too: see check_reversal_methods), nor
    where a pool starts at 0 mM (139421 Caolmw, 144007 CaInternal: an infinite reversal
    potential; their θ reach V through a cai reader, :func:`gradgen.checks.coverage.partners`)."""
    from gradgen.nmodl.lower import lower_file

    writers: dict[str, list[str]] = {}
    for name, mech in parsed.items():
        for ion in mech.ions:
            if f"{ion.name}i" in ion.write and f"{ion.name}i" in model.mechanisms[name].states:
                writers.setdefault(ion.name, []).append(name)

    def starts_positive(name: str, ion: str) -> bool:
        start = lower_file(model.mechanisms[name].source).initial.get(f"{ion}i")
        return start is None or not start.is_number or float(start) > 0

    entries = model.mechanisms.values()
    return {ion for ion, names in writers.items()
            if all(starts_positive(name, ion) for name in names) and all(
                not m.bystander and f"{ion}o" not in m.states
                for m in entries if {f"{ion}i", f"{ion}o"} & set(m.states))}


def near_far_sites(morphology: arbor.morphology) -> list[str]:
    """The root and the distal end of the branch farthest (path length) from it."""
    lengths = [g.length for g in branch_geometries(morphology)]
    distance: list[float] = []
    for b, length in enumerate(lengths):  # Arbor numbers parents before children
        parent = morphology.branch_parent(b)
        distance.append(length + (0.0 if parent == arbor.mnpos else distance[parent]))
    far = int(np.argmax(distance))
    return ["(location 0 0)", f"(location {far} 1)"]


def example_cells(c4a_path: str | Path | None = None) -> dict[str, tuple]:
    """The geometries of the acceptance tests: name → (morphology, labels, cv_policy).

    hh_axon: the shared benchmark cell (soma 1 CV, L 20 µm, r 10 µm; axon 10 CVs of 40 µm,
    r 0.5 µm). cone: 2 → 0.5 µm over 200 µm. step: 1 | 0.5 µm radius step, a CV straddling
    it. branched: a two-segment, two-CV soma, two dendritic trees with forks and tapers, and an
    axon as a second root branch (zero-length fork and root CVs). branched_forkcv: the same
    with CV boundaries away from the forks (fork CVs of positive length). c4a: the
    reconstructed neuron, one CV per branch (present only if the file exists).
    """
    cells = {}
    cells["hh_axon"] = hh_axon_geometry()
    t = arbor.segment_tree()
    _straight(t, arbor.mnpos, 0, 200, 2.0, 0.5, 3)
    cells["cone"] = (arbor.morphology(t),
                     arbor.label_dict({"thin": "(radius-lt (all) 1)",
                                       "far": "(distal-translate (root) 150)"}),
                     arbor.cv_policy_fixed_per_branch(10))
    t = arbor.segment_tree()
    s = _straight(t, arbor.mnpos, 0, 100, 1.0, 1.0, 3)
    _straight(t, s, 100, 200, 0.5, 0.5, 3)
    cells["step"] = (arbor.morphology(t), arbor.label_dict({"thin": "(radius-lt (all) 0.75)"}),
                     arbor.cv_policy_fixed_per_branch(9))

    def branched_tree():
        t = arbor.segment_tree()
        s0 = _straight(t, arbor.mnpos, 0, 12, 6, 6, 1)
        s1 = _straight(t, s0, 12, 24, 6, 5, 1)
        a = t.append(s1, arbor.mpoint(24, 0, 0, 1.2), arbor.mpoint(124, 20, 0, 0.6), tag=3)
        t.append(a, arbor.mpoint(124, 20, 0, 0.6), arbor.mpoint(200, 60, 0, 0.3), tag=3)
        t.append(a, arbor.mpoint(124, 20, 0, 0.5), arbor.mpoint(180, -10, 0, 0.4), tag=3)
        b = t.append(s1, arbor.mpoint(24, 0, 0, 0.8), arbor.mpoint(24, 100, 0, 0.8), tag=4)
        t.append(b, arbor.mpoint(24, 100, 0, 0.7), arbor.mpoint(0, 150, 0, 0.2), tag=4)
        t.append(b, arbor.mpoint(24, 100, 0, 0.7), arbor.mpoint(50, 150, 0, 0.25), tag=4)
        t.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(-150, 0, 0, 0.4), tag=2)
        return arbor.morphology(t)

    labels = {"soma": "(tag 1)", "axon": "(tag 2)", "dend": "(tag 3)", "apic": "(tag 4)",
              "thin": "(radius-lt (all) 0.5)", "syn": "(on-branches 0.7)",
              "near": "(distal-interval (root) 60)"}
    cells["branched"] = (branched_tree(), arbor.label_dict(labels),
                         arbor.cv_policy_max_extent(20 * U.um))
    cells["branched_forkcv"] = (branched_tree(), arbor.label_dict(labels),
                                _explicit([(0, 0.3), (0, 0.6)] + [(b, 0.5) for b in range(1, 8)]))
    if c4a_path is not None and Path(c4a_path).exists():
        lm = arbor.load_swc_arbor(str(c4a_path))
        cells["c4a"] = (lm.morphology, lm.labels, arbor.default_cv_policy())
    return cells
