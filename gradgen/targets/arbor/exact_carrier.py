"""The exact carrier: u_k = dV/dθ_k solved on the cell's own CV tree inside one mechanism.

The ion carrier rides on Arbor's ion diffusion, which is solved after the voltage (a split:
first order in dt) and conserves volume instead of charge (hence the constant-radius cell).
The exact carrier differentiates Arbor's discrete step itself: one generated mechanism per
cell (:func:`gradgen.targets.arbor.emit_fused.emit_exact`, every converted mechanism as a
member scaled by its covered fraction) is painted alone on every CV with membrane, on the
ORIGINAL geometry, and its C++ (:mod:`gradgen.targets.arbor.exact_patch`) solves all K
sensitivities with the tree of that cell once per step. This module hands the tree in: per
CV its capacitance, area and face conductance, computed with Arbor's discretisation rules
(frustum areas π(r0+r1)·√(Δr²+Δx²), face spans between CV reference points, resistance
∫rL·dx/(πr²), face conductance 100/resistance µS), painted as parameters of the CV's
instance. Zero-area fork CVs have no instance; each is held by its first child.

Point processes (synapses) run as their exact-carrier versions beside it, built into the same
catalogue: their sources enter the solve on their CV and u_k comes back to them
(:mod:`gradgen.targets.arbor.exact_channel`). Ion coupling among the members is carried
inside the mechanism (:func:`gradgen.targets.arbor.emit_fused.emit_exact`). What it does not
cover (junctions, KINETIC schemes, a pool on part of the cell, the cell's ion settings, ...)
runs the ion carrier, with the reason in a GradgenWarning (:func:`exact_blocker`). rL and cm
painted per region are integrated over each face and CV (:func:`painted_integral`).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.protocol import (
    HUB_NAME,
    exact_point_name,
    TREE_AREA,
    TREE_CAPACITANCE,
    TREE_FACE,
    TREE_FORK_FACE,
    TREE_FORK_PARENT,
    TREE_HOLDS_FORK,
    TREE_PARAMETERS,
    TREE_PARENT,
    TREE_TO_FORK,
    coverage,
    exact_name,
    member_prefix,
)
from gradgen.targets.arbor.build import build_catalogue
from gradgen.targets.arbor.decor import CellSpec, Membrane
from gradgen.targets.arbor.derived import DerivedName
from gradgen.targets.arbor.emit import emit_exact_point
from gradgen.targets.arbor.emit_fused import emit_exact
from gradgen.targets.arbor.exact_members import exact_points, partial_pool, point_blocker, points_beside
from gradgen.targets.arbor.fusion import fusion_blocker
from gradgen.targets.arbor.geometry.layout import (
    BranchGeometry,
    CvLayout,
    branch_geometries,
    cable_expr,
    cv_layout,
    join_regions,
)
from gradgen.targets.arbor.recipe import CellsRecipe
from gradgen.targets.arbor.sites import cv_centre, cv_of
from gradgen.targets.arbor.versions import global_spread, painted_values, split_globals

if TYPE_CHECKING:  # the model imports this module
    from gradgen.targets.arbor.model import GradientModel

log = logging.getLogger("gradgen")


@dataclass(frozen=True)
class CvTree:
    """Arbor's CV tree of one cell: parent CV (-1 at a root), membrane area (µm²),
    capacitance (pF) and the conductance of the face to the parent (µS, 0 at a root)."""

    layout: CvLayout
    area: np.ndarray
    capacitance: np.ndarray
    face: np.ndarray

    @property
    def parents(self) -> tuple[int, ...]:
        return self.layout.parents


def face_span(layout: CvLayout, cv: int) -> tuple[int, float, float]:
    """(branch, prox, dist) of the face between ``cv`` and its parent (Arbor's fvm_layout
    rule: on the child's first branch, from the parent's reference point — the midpoint of a
    one-cable CV, else the fork — to the child's)."""
    cables, parent = layout.cables[cv], layout.cables[layout.parents[cv]]
    branch = cables[0][0]
    lo, hi = 0.0, 1.0
    if len(cables) == 1:
        hi = 0.5 * (cables[0][1] + cables[0][2])
    if len(parent) == 1 and parent[0][0] == branch:
        lo = 0.5 * (parent[0][1] + parent[0][2])
    return branch, lo, hi


def painted_integral(cell: arbor.cable_cell, default: float, regions: Sequence[tuple[str, float]]):
    """∫ value·measure over a branch interval, with ``value`` painted per region (later paints
    win, ``default`` elsewhere): how Arbor integrates a per-region rL or cm over a face or a CV."""
    painted = [(value, [c for c in cell.cables(region)]) for region, value in regions]

    def integrate(branch: int, lo: float, hi: float, measure) -> float:
        cuts = {lo, hi}
        for _, cables in painted:
            cuts |= {x for c in cables if c.branch == branch for x in (c.prox, c.dist) if lo < x < hi}
        points = sorted(cuts)
        total = 0.0
        for a, b in zip(points, points[1:]):
            value = default
            for v, cables in painted:
                if any(c.branch == branch and c.prox <= 0.5 * (a + b) <= c.dist for c in cables):
                    value = v
            total += value * measure(a, b)
        return total
    return integrate


def cv_tree(cell: arbor.cable_cell, geoms: list[BranchGeometry], membrane: Membrane) -> CvTree:
    """The CV tree of ``cell``, with rL and cm painted per region where they are."""
    layout = cv_layout(cell)
    rL = painted_integral(cell, membrane.rL, membrane.rL_regions)
    cm = painted_integral(cell, membrane.cm, membrane.cm_regions)
    area = np.array([sum(geoms[b].area(x0, x1) for b, x0, x1 in cables) for cables in layout.cables])
    capacitance = 0.01 * np.array([sum(cm(b, x0, x1, geoms[b].area) for b, x0, x1 in cables)
                                   for cables in layout.cables])
    face = np.zeros(len(area))
    for i, parent in enumerate(layout.parents):
        if parent >= 0:
            branch, lo, hi = face_span(layout, i)
            face[i] = 100.0 / rL(branch, lo, hi, geoms[branch].ixa)
    return CvTree(layout, area, capacitance, face)


#: How far Arbor's own voltage step may be from the tree's equations (relative): measured
#: 6e-16 (HH axon) to 1.8e-13 (C4A, 94 CVs); one face conductance off by 1e-6 shows as
#: 1.5e-9 (C4A) to 5e-7.
TREE_CHECK_TOLERANCE = 1e-10
_CHECK_DT, _CHECK_G = 0.025, 1e-3  # ms, S/cm² (built-in pas, e = 0)


def check_tree(spec: CellSpec, tree: CvTree, membrane: Membrane) -> float:
    """Relative residual of one Arbor voltage step of the cell (passive, V⁰ varying per CV)
    in the tree's equations; refuses the tree above :data:`TREE_CHECK_TOLERANCE`.

    This guards the discretisation rules of :func:`cv_tree` against the Arbor at hand: the
    tree is what the exact carrier's solve uses, and u_k is exact only if it is Arbor's.
    """
    decor = arbor.decor()
    decor.set_property(Vm=0 * U.mV, cm=membrane.cm * 0.01 * U.F / U.m2, rL=membrane.rL * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("pas/e=0", {"g": _CHECK_G}))
    for region, rL in membrane.rL_regions:
        decor.paint(region, rL=rL * U.Ohm * U.cm)
    for region, cm in membrane.cm_regions:
        decor.paint(region, cm=cm * 0.01 * U.F / U.m2)
    for cv, cables in enumerate(tree.layout.cables):
        if tree.area[cv] > 0:
            region = join_regions([cable_expr(b, x0, x1) for b, x0, x1 in cables])
            decor.paint(region, Vm=10.0 * np.sin(1.7 * cv + 0.3) * U.mV)
    probe = arbor.cable_probe_membrane_voltage_cell("v")
    props = arbor.neuron_cable_properties()
    for ion, settings in spec.ions.items():
        props.set_ion(ion, **settings)
    recipe = CellsRecipe([spec.build(decor)], props, [[probe]])
    handles = recipe.sample_run([(0, "v")], 1.5 * _CHECK_DT, _CHECK_DT,
                                arbor.explicit_schedule([0 * U.ms, _CHECK_DT * U.ms]))
    (data, _meta), = recipe.sim.samples(handles[(0, "v")])
    first = []  # the first cable of each CV in the probe's metadata (CVs in order)
    seen = 0
    for cables in tree.layout.cables:
        first.append(seen)
        seen += len(cables)
    v0, v1 = data[0, 1:][first], data[1, 1:][first]
    cap = 1e-3 * tree.capacitance / _CHECK_DT
    residual = cap * (v1 - v0) + 1e-2 * tree.area * _CHECK_G * v1
    for i, parent in enumerate(tree.parents):
        if parent >= 0:
            flow = tree.face[i] * (v1[i] - v1[parent])
            residual[i] += flow
            residual[parent] -= flow
    error = float(np.max(np.abs(residual)) / np.max(np.abs(cap * v0)))
    if not error <= TREE_CHECK_TOLERANCE:
        raise GradgenError(
            f"the exact carrier's CV tree does not reproduce Arbor's voltage step on this cell "
            f"(relative residual {error:.2g})",
            hint="this Arbor discretises differently from 0.12; use carrier='ion'")
    return error


def checked_tree(spec: CellSpec, cell: arbor.cable_cell, geoms: list[BranchGeometry],
                 membrane: Membrane) -> CvTree:
    """The cell's tree, checked against Arbor once per spec (kept in ``spec.derived``)."""
    key = ("exact_tree", membrane.cm, membrane.rL, membrane.rL_regions, membrane.cm_regions, str(spec.cv_policy))
    hit = spec.derived.get(key)
    if hit is not None and hit[0] is spec.morphology:
        return hit[1]
    tree = cv_tree(cell, geoms, membrane)
    log.info("exact carrier: CV tree of %d CVs, Arbor's step reproduced to %.1e",
             len(tree.area), check_tree(spec, tree, membrane))
    spec.derived[key] = (spec.morphology, tree)
    return tree


def _geometry(spec: CellSpec) -> tuple[list[BranchGeometry], dict[str, np.ndarray]]:
    """The branch geometries of ``spec`` and its cache of covered areas per region, kept in
    ``spec.derived`` (computing them was half the set-up of a gradient run on C4A)."""
    key = ("exact_geometry", str(spec.cv_policy))
    hit = spec.derived.get(key)
    if hit is None or hit[0] is not spec.morphology:
        hit = spec.derived[key] = (spec.morphology, branch_geometries(spec.morphology), {})
    return hit[1], hit[2]


def tree_parameters(tree: CvTree) -> list[tuple[int, dict[str, float]]]:
    """(CV, tree parameters) of every CV with membrane — the instances of the exact mechanism,
    in Arbor's instance order (ascending CV) — with each zero-area fork held by its first child.
    """
    cvs = [i for i in range(len(tree.area)) if tree.area[i] > 0]
    instance = {cv: j for j, cv in enumerate(cvs)}
    children: dict[int, list[int]] = {}
    for i, parent in enumerate(tree.parents):
        children.setdefault(parent, []).append(i)
    holder = {}
    for i in range(len(tree.area)):
        if tree.area[i] > 0:
            continue
        kids = [c for c in children.get(i, []) if tree.area[c] > 0]
        if not kids or len(kids) != len(children.get(i, [])):
            raise GradgenError(f"CV {i} has no membrane and is not a fork between CVs with membrane",
                               hint="use a cv_policy without empty CVs, or carrier='ion'")
        holder[i] = min(kids)
    out = []
    for j, cv in enumerate(cvs):
        parent = tree.parents[cv]
        values = dict.fromkeys(TREE_PARAMETERS, 0.0)
        values[TREE_CAPACITANCE], values[TREE_AREA] = float(tree.capacitance[cv]), float(tree.area[cv])
        if parent >= 0:
            values[TREE_FACE] = float(tree.face[cv])
            if parent in holder:
                values[TREE_PARENT], values[TREE_TO_FORK] = float(j - instance[holder[parent]]), 1.0
            else:
                values[TREE_PARENT] = float(j - instance[parent])
        out.append((cv, values))
    for fork, h in holder.items():
        values = out[instance[h]][1]
        values[TREE_HOLDS_FORK] = 1.0
        parent = tree.parents[fork]
        if parent >= 0:
            if parent in holder:
                raise GradgenError(f"CVs {parent} and {fork} are adjacent forks without membrane",
                                   hint="use a cv_policy without empty CVs, or carrier='ion'")
            values[TREE_FORK_PARENT] = float(instance[h] - instance[parent])
            values[TREE_FORK_FACE] = float(tree.face[fork])
    return out


@dataclass
class ExactLayout:
    """The exact mechanism of one cell: its name, members and per-CV paints."""

    name: str
    members: list[str]
    paints: list[tuple[str, arbor.density]]
    everywhere: bool  # every member covers part of every CV with membrane
    points: dict[str, str]  # point process -> its exact-carrier version beside this mechanism


def exact_layout(cell: arbor.cable_cell, geoms: list[BranchGeometry], tree: CvTree,
                 pieces: list[tuple[str, str, dict[str, float]]],
                 defaults: dict[str, dict[str, float]], points: Sequence[str] = (),
                 covers: dict[str, np.ndarray] | None = None) -> ExactLayout:
    """One paint per CV with membrane: the tree parameters, and per member its covered
    fraction of the CV's area and its parameters averaged over the part it covers (what
    Arbor hands a partly painted mechanism); absent members get fraction 0 and defaults.
    ``points``: the point processes placed on the cell (they name the mechanism too, so that
    a cell without them never loads this one's catalogue in their place). ``covers``: region
    -> area it covers in each CV, filled where missing (a cache: the geometry is the same at
    every θ)."""
    members = sorted({mech for _, mech, _ in pieces})
    name = exact_name(members + sorted(set(points) - set(members)))
    covers = {} if covers is None else covers
    for region, _, _ in pieces:
        if region not in covers:
            cables_m = cell.cables(region)
            covers[region] = np.array([_covered_area(cables, cables_m, geoms) for cables in tree.layout.cables])
    paints = []
    everywhere = True
    for cv, values in tree_parameters(tree):
        cables = tree.layout.cables[cv]
        shares: dict[str, list[tuple[float, dict[str, float]]]] = {}
        for region, mech, vals in pieces:
            covered = float(covers[region][cv])
            if covered > 0:
                shares.setdefault(mech, []).append((covered, vals))
        for mech in members:
            parts = shares.get(mech, [])
            fraction = sum(a for a, _ in parts) / tree.area[cv]
            everywhere &= fraction > 0
            values[coverage(mech)] = 1.0 if fraction > 1 - 1e-9 else fraction
            params = _area_average(parts, defaults[mech]) if parts else defaults[mech]
            values.update({member_prefix(mech) + k: v for k, v in params.items()})
        region = join_regions([cable_expr(b, x0, x1) for b, x0, x1 in cables])
        paints.append((region, arbor.density(name, values)))
    return ExactLayout(name, members, paints, everywhere, {p: exact_point_name(name, p) for p in sorted(points)})


def _covered_area(cables, cables_m, geoms: list[BranchGeometry]) -> float:
    total = 0.0
    for b, x0, x1 in cables:
        for c in cables_m:
            if c.branch == b:
                lo, hi = max(x0, c.prox), min(x1, c.dist)
                if hi > lo:
                    total += geoms[b].area(lo, hi)
    return total


def _area_average(parts: list[tuple[float, dict[str, float]]], defaults: dict[str, float]) -> dict[str, float]:
    """Parameters averaged by covered area (a value shared by every part is kept exactly)."""
    out = dict(defaults)
    for key in {k for _, values in parts for k in values}:
        vals = [values.get(key, defaults.get(key, 0.0)) for _, values in parts]
        out[key] = vals[0] if all(v == vals[0] for v in vals) else \
            sum(a * v for (a, _), v in zip(parts, vals)) / sum(a for a, _ in parts)
    return out


def exact_blocker(model: "GradientModel", spec: CellSpec, membrane: Membrane) -> str | None:
    """Why the exact carrier cannot run this model and cell (None if it can)."""
    return model.exact_refusal or point_blocker(model, spec) \
        or fusion_blocker(model, spec, frozenset(exact_points(model, spec)), exact=True)


def exact_catalogue(model: "GradientModel", layout: ExactLayout) -> Path:
    """The compiled exact mechanism (cached on disk by content, in the model by members).

    Where some member is absent from some CV (members on different regions, as on the IO
    cell), each member runs only where it covers part of the CV: guarded by its covered
    fraction, and in SIMD code skipped for chunks without it. Unguarded, every member runs on
    every CV (measured on the bundled IO cell, K = 12: 9.1× a plain run; guarded scalar 6.0×).
    """
    guarded = not layout.everywhere
    key = ("exact", guarded, layout.name)
    if key not in model.fused_catalogues:
        sources = {f"{layout.name}.mod": emit_exact([model.exact_systems[m] for m in layout.members],
                                                    model.params, guarded, layout.name)}
        sources.update({f"{name}.mod": emit_exact_point(model.exact_systems[point], name)
                        for point, name in layout.points.items()})
        guards = tuple(coverage(m) for m in layout.members) if guarded else ()
        model.fused_catalogues[key] = build_catalogue(
            sources, "gradexact", model.vectorize, {layout.name: (len(model.params), guards)},
            {name: len(model.params) for name in layout.points.values()}, tuple(layout.members))
    return model.fused_catalogues[key]


def exact_cell(model: "GradientModel", spec: CellSpec, values: dict[str, float] | None,
               membrane: Membrane, sites: Sequence[str]) -> tuple | None:
    """The gradient cell with the exact carrier on the original geometry, its properties, the
    probe centres and the mechanism that publishes u_k at each; None (with a GradgenWarning)
    where the ion carrier must run instead."""
    reason = exact_blocker(model, spec, membrane)
    if reason is None:
        blank = spec.build(arbor.decor())
        centres = [cv_centre(blank, site) for site in sites]
        geoms, covers = _geometry(spec)
        tree = checked_tree(spec, blank, geoms, membrane)
        if any(tree.area[cv_of(blank, c)[0]] <= 0 for c in centres):
            reason = "a probe site in a CV without membrane"
        elif any(tree.area[cv_of(blank, f"(location {loc.branch} {loc.pos!r})", "synapse")[0]] <= 0
                 for place in spec.decor.places if isinstance(place.what, arbor.synapse)
                 for loc in blank.locations(place.locset)):
            reason = "a synapse in a CV without membrane"
    if reason is not None:  # the user asked for the exact carrier: say so, not only in the log
        warnings.warn(f"gradient cell: ion carrier, the exact carrier does not cover {reason}",
                      GradgenWarning, stacklevel=3)
        return None
    original = {entry.gradient: name for name, entry in model.mechanisms.items()}
    pieces = [(region, original[name], vals)
              for region, d in model.densities(spec, True, values or {}, membrane)
              if d.mech.name != HUB_NAME for name, vals in [painted_values(d.mech)]]
    defaults = {m: {p.name: float(p.value or 0.0) for p in model.systems[m].lowered.parameters}
                for m in model.mechanisms}
    globals_ = {m: entry.globals for m, entry in model.mechanisms.items()}
    spread = global_spread(pieces, globals_, defaults)
    if spread:  # one mechanism holds one value of each GLOBAL
        warnings.warn(f"gradient cell: ion carrier, the exact carrier does not cover a {spread}",
                      GradgenWarning, stacklevel=3)
        return None
    pieces, defaults, fixed = split_globals(pieces, globals_, defaults)
    layout = exact_layout(blank, geoms, tree, pieces, defaults, exact_points(model, spec), covers)
    pool = partial_pool(model, layout)
    if pool:  # its concentration would be written as 0 where it is absent
        warnings.warn(f"gradient cell: ion carrier, the exact carrier does not cover '{pool}' (it writes a "
                      "coupled concentration) on part of the cell", GradgenWarning, stacklevel=3)
        return None
    decor = spec.decor.to_arbor([], place_map=points_beside(layout, model.synapse_map(True, values or {})))
    # members' GLOBALs set through a derived name, which the probes of u_k name too
    named = DerivedName(layout.name).named(layout.name, {k: v for m in layout.members for k, v in fixed[m].items()})
    for region, density in layout.paints:
        decor.paint(region, arbor.density(named, dict(density.mech.values)))
    props = arbor.neuron_cable_properties()
    for ion, settings in spec.ions.items():  # the model's own ions (h of an Ih channel, ModelDB 180370's caL)
        props.set_ion(ion, **settings)
    props.catalogue.extend(arbor.load_catalogue(str(exact_catalogue(model, layout))), "")
    log.info("gradient cell: exact carrier %s", layout.name)
    return spec.build(decor), props, centres, [named] * len(centres)
