"""Where the fused design applies, and the gradient cell built with it.

A fused mechanism (:mod:`gradgen.targets.arbor.emit_fused`) does the hub's per-CV update itself, so it must
be the one gradient mechanism of its CV and cover the whole CV (Arbor scales a mechanism's
carrier write by the covered fraction, which a mechanism cannot read). :func:`fused_layout`
therefore paints, on every CV with membrane, the fused mechanism of the mechanisms painted
there, over the whole CV, and hands it each member's covered fraction and the member's
parameters averaged over the part it covers — what Arbor would give the member itself. Models
with what fusion does not cover (point processes, ion coupling, the naive scheme or geometry)
run the hub design instead; :func:`fusion_blocker` says why.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.nmodl.lower import lower_file
from gradgen.protocol import HUB_NAME, carrier_ion, coverage, fused_name, member_prefix
from gradgen.sensitivity.coupling import Coupling
from gradgen.sensitivity.derive import ContributorSystem, derive_contributor
from gradgen.targets.arbor.build import build_catalogue
from gradgen.targets.arbor.decor import CellSpec, Membrane
from gradgen.targets.arbor.derived import DerivedName, base_name
from gradgen.targets.arbor.emit_fused import emit_fused, fusable
from gradgen.targets.arbor.geometry.cell import cell_geometry
from gradgen.targets.arbor.geometry.layout import cable_expr, join_regions
from gradgen.targets.arbor.sites import cv_centre, cv_of
from gradgen.targets.arbor.versions import global_spread, painted_values, split_globals

if TYPE_CHECKING:  # the model imports this module
    from gradgen.targets.arbor.model import GradientModel

log = logging.getLogger("gradgen")

#: A covered fraction this close to 0 or 1 counts as none or all (length rounding, ~1e-15).
COVERAGE_TOLERANCE = 1e-9


@dataclass
class FusedLayout:
    """The fused mechanisms of one gradient cell: their paints on the transformed cell, their
    members, and the fused mechanism (or None) of every CV."""

    paints: list[tuple[str, arbor.density]]
    members: dict[str, list[str]]
    cv_mechanism: list[str | None]


def fusion_blocker(model: "GradientModel", spec: "CellSpec", exempt: frozenset[str] = frozenset(),
                   exact: bool = False) -> str | None:
    """Why the model or cell needs the hub design (None if fusion may apply); ``exempt``: placed
    mechanisms the caller runs itself (the exact carrier's point processes); ``exact``: the
    exact mechanism asks, which carries ion coupling among its members."""
    if model.carrier_geometry != "exact":
        return "the naive carrier geometry"
    if model.store_ions and not exact:
        return "ion coupling between mechanisms"
    if model.manifest.scheme != "corrected":
        return "the naive update scheme"
    if model.manifest.homeostatic:
        return "the homeostatic hub"
    placed = {p.what.mech.name for p in spec.decor.places if isinstance(p.what, (arbor.synapse, arbor.junction))}
    placed |= {base_name(mech) for mech in spec.decor.voltage_processes()}
    placed &= set(model.mechanisms) - exempt
    if placed:
        return f"point, junction or voltage process(es) {', '.join(sorted(placed))}"
    if any(entry.bystander for entry in model.mechanisms.values()):
        return "a mechanism that runs as its original (a bystander)"
    pasted = model.pasted_initial_solves
    if pasted:  # fused members would solve them by elimination, not with the original's code
        return f"the initial SOLVE pasted from the original (gradgen/nmodl/initial_solve.py): {', '.join(pasted)}"
    painted = [mech for _, mech, _ in spec.decor.densities()]
    if any(DerivedName.parse(mech).ions if exact else base_name(mech) != mech for mech in painted):
        return "derived mechanism names" + (" that rename ions" if exact else "")
    if (spec.decor.ions or spec.ions) and not exact:
        return "ion settings of the cell"
    if spec.decor.membrane_property("cm") and not exact:
        return "cm painted per region (the hub's cm follows it)"
    for mech in map(base_name, painted):
        systems = model.exact_systems if exact else model.systems
        reason = fusable(systems[mech], exact) if mech in model.mechanisms else None
        if reason:
            return reason
    return None


def derive_systems(model: "GradientModel", direct: bool = False) -> dict[str, ContributorSystem]:
    """Each converted mechanism's gradient system (from its stored source); ``direct``: σ
    updated with u^{n+1} in phase B, with the model's ion coupling carried inside the one
    mechanism, reversal potentials following it where the cell uses nernst (the exact
    carrier's form), else without coupling (fusion)."""
    coupling = Coupling()
    if direct:
        coupling = Coupling(tuple(model.manifest.coupling.currents), tuple(model.manifest.coupling.concentrations))
    out = {}
    for name, entry in model.mechanisms.items():
        if entry.bystander:
            continue
        out[name] = derive_contributor(lower_file(model.directory / entry.source_copy), model.params,
                                       coupling, direct=direct)
    return out


def _branch_lengths(morphology: arbor.morphology) -> list[float]:
    lengths = []
    for b in range(morphology.num_branches):
        lengths.append(sum(float(np.linalg.norm(np.subtract((s.dist.x, s.dist.y, s.dist.z),
                                                            (s.prox.x, s.prox.y, s.prox.z))))
                           for s in morphology.branch_segments(b)))
    return lengths


def _overlap(a: Sequence, b: Sequence, lengths: list[float]) -> float:
    """Length (µm) shared by two lists of cables."""
    total = 0.0
    for x in a:
        for y in b:
            if x.branch == y.branch:
                total += max(0.0, min(x.dist, y.dist) - max(x.prox, y.prox)) * lengths[x.branch]
    return total


def fused_layout(cell: arbor.cable_cell, morphology: arbor.morphology,
                 pieces: list[tuple[str, str, dict[str, float]]], cm: float,
                 defaults: dict[str, dict[str, float]]) -> FusedLayout:
    """Plan the fused mechanisms of a cell of one radius (lengths stand for areas).

    ``pieces``: (region on this cell, mechanism, values) of every paint; ``cm`` (µF/cm²) the
    hub's membrane capacitance; ``defaults``: each mechanism's parameter defaults. Every CV
    with membrane gets the fused mechanism of the mechanisms on it, painted on the whole CV,
    with each member's covered fraction and its parameters averaged over the part it covers
    (what Arbor hands a partly painted mechanism).
    """
    lengths = _branch_lengths(morphology)
    data = arbor.cv_data(cell)
    cv_cables = [data.cables(i) for i in range(data.num_cv)]
    painted = [(mech, cell.cables(region), values) for region, mech, values in pieces]
    groups: dict[tuple, list[int]] = {}
    cv_mechanism: list[str | None] = []
    members_of: dict[str, list[str]] = {}
    for i, cables in enumerate(cv_cables):
        size = _overlap(cables, cables, lengths)
        shares: dict[str, list[tuple[float, dict[str, float]]]] = {}
        for mech, cables_m, values in painted:
            length = _overlap(cables, cables_m, lengths) if size > 0 else 0.0
            if length > COVERAGE_TOLERANCE * size:
                shares.setdefault(mech, []).append((length, values))
        if not shares:  # no membrane (a zero-length fork CV) or no gradient mechanism
            cv_mechanism.append(None)
            continue
        members = sorted(shares)
        name = fused_name(members)
        members_of[name] = members
        values = {"cm": cm}
        for mech in members:
            fraction = sum(length for length, _ in shares[mech]) / size
            values[coverage(mech)] = 1.0 if fraction > 1 - COVERAGE_TOLERANCE else fraction
            values.update({member_prefix(mech) + k: v
                           for k, v in _averaged(shares[mech], defaults[mech]).items()})
        groups.setdefault((name, tuple(sorted(values.items()))), []).append(i)
        cv_mechanism.append(name)
    paints = [(join_regions([cable_expr(c.branch, c.prox, c.dist) for i in cvs for c in cv_cables[i]]),
               arbor.density(name, dict(values))) for (name, values), cvs in groups.items()]
    return FusedLayout(paints, members_of, cv_mechanism)


def _averaged(shares: list[tuple[float, dict[str, float]]], defaults: dict[str, float]) -> dict[str, float]:
    """Parameter values averaged by covered length (a value shared by every piece is kept exactly)."""
    keys = {k for _, values in shares for k in values}
    out = {}
    for key in keys:
        vals = [values.get(key, defaults.get(key, 0.0)) for _, values in shares]
        if all(v == vals[0] for v in vals):
            out[key] = vals[0]
        else:
            out[key] = sum(length * v for (length, _), v in zip(shares, vals)) / sum(l for l, _ in shares)
    return out


def fused_catalogue(model: "GradientModel", layout: FusedLayout) -> Path:
    """The compiled fused mechanisms of a layout (on disk, cached by content like every
    catalogue; in the model, by the set of fused mechanisms, so repeated runs skip emission)."""
    key = tuple(sorted(layout.members))
    if key not in model.fused_catalogues:
        sources = {f"{name}.mod": emit_fused([model.systems[m] for m in members], model.params)
                   for name, members in layout.members.items()}
        model.fused_catalogues[key] = build_catalogue(sources, "gradfused", model.vectorize)
    return model.fused_catalogues[key]


def fused_properties(model: "GradientModel", layout: FusedLayout,
                     base: arbor.cable_cell_global_properties) -> arbor.cable_cell_global_properties:
    """Global properties with the fused catalogue and the K carrier ions only."""
    base.catalogue.extend(arbor.load_catalogue(str(fused_catalogue(model, layout))), "")
    for k in range(len(model.params)):
        base.set_ion(carrier_ion(k), valence=1, int_con=0 * U.mM, ext_con=0 * U.mM,
                     rev_pot=0 * U.mV, diff=1e-9 * U.m2 / U.s)
    return base


def probe_mechanisms(layout: FusedLayout, cell: arbor.cable_cell, sites: Sequence[str]) -> list[str] | None:
    """The fused mechanism whose u_k states describe each probe site's CV (None if a site's
    CV has no gradient mechanism)."""
    names = [layout.cv_mechanism[cv_of(cell, site)[0]] for site in sites]
    return None if None in names else names


def fused_cell(model: "GradientModel", spec: "CellSpec", values: dict[str, float] | None,
               membrane: "Membrane", sites: Sequence[str]) -> tuple | None:
    """The gradient cell with fused mechanisms on the transformed geometry, its properties,
    the probe centres (``sites`` already mapped onto that geometry) and the fused mechanism of
    each probe; None (logged) where the hub design is needed."""
    model.refuse_diam_readers(spec)
    reason = fusion_blocker(model, spec)
    if reason is None:
        geo = cell_geometry(spec, membrane).equivalent
        original = {entry.gradient: name for name, entry in model.mechanisms.items()}
        pieces = [(geo.map_region(region), original[name], vals)
                  for region, d in model.densities(spec, True, values or {}, membrane)
                  if d.mech.name != HUB_NAME for name, vals in [painted_values(d.mech)]]
        blank = geo.cable_cell(arbor.decor())
        defaults = {m: {p.name: float(p.value or 0.0) for p in model.systems[m].lowered.parameters}
                    for m in model.mechanisms}
        globals_ = {m: entry.globals for m, entry in model.mechanisms.items()}
        reason = global_spread(pieces, globals_, defaults)
    if reason is None:
        pieces, defaults, fixed = split_globals(pieces, globals_, defaults)
        layout = fused_layout(blank, geo.morphology, pieces, membrane.cm, defaults)
        centres = [cv_centre(blank, site) for site in sites]
        hubs = probe_mechanisms(layout, blank, centres)
        reason = None if hubs else "a probe site without mechanisms"
    if reason is not None:
        log.info("gradient cell: hub design (%s)", reason)
        return None
    decor = spec.decor.to_arbor([], geo.map_region, geo.map_locset, without=("rL",),
                                place_map=model.synapse_map(True, values or {}))
    # members' GLOBALs set through a derived name, which the probes of u_k name too
    named = {name: DerivedName(name).named(name, {k: v for m in members for k, v in fixed[m].items()})
             for name, members in layout.members.items()}
    for region, density in layout.paints:
        decor.paint(region, arbor.density(named[density.mech.name], dict(density.mech.values)))
    geo.paint_axial(decor)
    for k in range(len(model.params)):
        geo.paint_carrier(decor, carrier_ion(k))
    log.info("gradient cell: fused mechanisms %s", ", ".join(layout.members))
    props = fused_properties(model, layout, arbor.neuron_cable_properties())
    return geo.cable_cell(decor), props, centres, [named[hub] for hub in hubs]
