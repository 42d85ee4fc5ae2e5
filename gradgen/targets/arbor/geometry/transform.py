"""Geometry-exact gradient carriers: an electrically identical constant-radius cell.

gradgen carries each sensitivity u_k = dV/dθ_k as the diffusive concentration Xd of an extra
ion. Arbor's ion diffusion conserves *volume* (∝ r²) while the cable equation conserves
*charge* (∝ r·cm), so Xd follows the voltage operator only where the radius is constant.
This module

1. uses the measured law of Arbor's ion diffusion (:mod:`.carrier_law`);
2. transforms a cell into an electrically identical one of a single radius a0
   (:func:`equivalent_cell`): every CV keeps its membrane area, every CV face keeps its axial
   conductance (rL painted per half-CV), and the carrier's diffusivity D is painted per
   half-CV so that Xd diffusion equals the voltage operator exactly;
3. maps the user's labels and locations onto the new cell (area-preserving for paints,
   axial-resistance-preserving for point probes and stimuli).

What the transform cannot do (and why):

- **Non-uniform cm** is carried by the radius: the carrier needs vol/C = a/(2·cm) equal on
  every CV, so a CV whose (area-weighted) cm is c gets the radius a0·c/c_min instead of a0
  (areas kept, so densities are unchanged). The faces between CVs of different cm then join
  two radii; the carrier check of the gradient tests measures what that costs.
- **Mechanisms that read ``diam`` or ``area``** (e.g. calcium pools whose volume follows the
  diameter) see the new geometry, not the reconstruction. Their parameters must be rescaled
  by the caller, or the cell refused.
- **iexpr labels** (``(diameter)``, ``(distance)``, … as scales) would change meaning; they are
  refused. Region/locset labels are evaluated on the original cell and baked in.
- **Other diffusive ions** of the model would diffuse on the new geometry; only carrier ions
  may diffuse.
- The transform is tied to the CV policy: the new cell uses an explicit policy at the images
  of the original CV boundaries. Raw ``(segment n)``/``(cable …)`` expressions change meaning;
  pass every expression through :meth:`EquivalentGeometry.map_region` /
  :meth:`EquivalentGeometry.map_locset`. ``(branch n)`` and ``(tag n)`` keep working.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.targets.arbor.geometry.carrier_law import (
    CarrierLaw,
    carrier_diffusivity,
    carrier_law,
    radius_is_uniform,
    worst_radius_ratio,
)
from gradgen.targets.arbor.geometry.layout import (
    BranchGeometry,
    CvLayout,
    branch_geometries,
    cable_expr,
    cv_layout,
    join_regions,
    sum_locsets,
)

__all__ = [
    "CarrierLaw",
    "carrier_law",
    "carrier_diffusivity",
    "worst_radius_ratio",
    "radius_is_uniform",
    "Piece",
    "EquivalentGeometry",
    "equivalent_cell",
    "naive_carrier_paints",
]

# --------------------------------------------------------------------------------------------
# Pieces: half-CVs and fork cables, with their faces
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """One half of a one-cable CV, or one cable of a multi-cable (fork) CV.

    The two halves of a one-cable CV get equal new lengths (the CV's midpoint is a face's
    reference point, so it must stay the midpoint); a fork cable keeps its own area.
    Positions are branch positions on the original (``prox``, ``dist``) and on the new cell
    (``new_prox``, ``new_dist``). ``face`` is the CV whose parent face span contains the piece
    (-1: in no span: its rL and D do not enter the operators).
    """

    cv: int
    branch: int
    prox: float
    dist: float
    area_um2: float
    ixa_per_um: float
    face: int
    half: bool
    new_prox: float = 0.0
    new_dist: float = 0.0
    new_length_um: float = 0.0
    rL_ohm_cm: float = 0.0
    diffusivity_m2_s: float = 0.0
    radius_um: float = 0.0  # of the piece on the new cell (a0 unless cm varies)


def _face_spans(layout: CvLayout) -> dict[int, tuple[int, float, float]]:
    """Arbor's span of the face between each CV and its parent (fvm_layout rules)."""
    spans = {}
    for i, p in enumerate(layout.parents):
        if p < 0:
            continue
        cabs, pcabs = layout.cables[i], layout.cables[p]
        bid = cabs[0][0]
        lo, hi = 0.0, 1.0
        if len(cabs) == 1:
            hi = 0.5 * (cabs[0][1] + cabs[0][2])
        if len(pcabs) == 1 and pcabs[0][0] == bid:
            lo = 0.5 * (pcabs[0][1] + pcabs[0][2])
        spans[i] = (bid, lo, hi)
    return spans


def _pieces(geoms: list[BranchGeometry], layout: CvLayout) -> list[Piece]:
    raw = []
    for i, cabs in enumerate(layout.cables):
        if len(cabs) == 1 and cabs[0][2] > cabs[0][1]:
            b, x0, x1 = cabs[0]
            m = 0.5 * (x0 + x1)
            raw += [(i, b, x0, m, True), (i, b, m, x1, True)]
        else:
            raw += [(i, b, x0, x1, False) for b, x0, x1 in cabs]
    spans = _face_spans(layout)
    face = [-1] * len(raw)
    tol = 1e-12
    for i, (bid, lo, hi) in spans.items():
        covered = 0.0
        for q, (_cv, b, x0, x1, _h) in enumerate(raw):
            if b != bid or x1 <= x0 or x0 < lo - tol or x1 > hi + tol:
                continue
            if face[q] >= 0:
                raise GradgenError(f"CV {i}: a half-CV lies in two face spans; this CV "
                                   f"layout is not supported", hint="use another cv_policy")
            face[q] = i
            covered += x1 - x0
        if abs(covered - (hi - lo)) > 1e-9:
            raise GradgenError(f"CV {i}: its face span is not made of whole half-CVs; this CV "
                               f"layout is not supported", hint="use another cv_policy")
    return [Piece(cv, b, x0, x1, geoms[b].area(x0, x1), geoms[b].ixa(x0, x1), face[q], h)
            for q, (cv, b, x0, x1, h) in enumerate(raw)]


def _original_cell(morphology, labels, cv_policy) -> arbor.cable_cell:
    return arbor.cable_cell(morphology, arbor.decor(), labels, cv_policy)


def _as_label_dict(labels) -> arbor.label_dict:
    if labels is None:
        return arbor.label_dict()
    if isinstance(labels, arbor.label_dict):
        return labels
    if isinstance(labels, Mapping):
        return arbor.label_dict(dict(labels))
    raise GradgenError(f"labels must be an arbor.label_dict or a mapping, not "
                       f"{type(labels).__name__}")


def naive_carrier_paints(morphology: arbor.morphology, labels=None,
                         cv_policy: arbor.cv_policy | None = None, rL_ohm_cm: float = 100.0,
                         cm_uF_cm2: float = 1.0) -> list[tuple[str, float]]:
    """Per-half-CV carrier diffusivities on the *untransformed* cell (region, m²/s).

    Each piece gets the uniform-cylinder D of its own mean radius and its face span: exact for
    a constant radius, and the best one can do without the transform otherwise. Kept to
    measure the error the transform removes (and for uniform cells, where it equals the
    transform's paints).
    """
    law = carrier_law()
    labels = _as_label_dict(labels)
    cv_policy = cv_policy or arbor.default_cv_policy()
    geoms = branch_geometries(morphology)
    layout = cv_layout(_original_cell(morphology, labels, cv_policy))
    pieces = _pieces(geoms, layout)
    span_len: dict[int, float] = {}
    for p in pieces:
        if p.face >= 0:
            span_len[p.face] = span_len.get(p.face, 0.0) + (p.dist - p.prox) * geoms[p.branch].length
    out = []
    for p in pieces:
        length = (p.dist - p.prox) * geoms[p.branch].length
        if length <= 0.0:
            continue
        radius = p.area_um2 / (2 * math.pi * length)
        ell = span_len[p.face] if p.face >= 0 else length
        out.append((cable_expr(p.branch, p.prox, p.dist),
                    law.diffusivity(radius, ell, rL_ohm_cm, cm_uF_cm2)))
    return out


# --------------------------------------------------------------------------------------------
# The transform
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EquivalentGeometry:
    """A constant-radius cell electrically identical to the original, plus the maps to it.

    Build the simulated cell with :meth:`cable_cell` after painting :meth:`paint_axial` and,
    per carrier ion, :meth:`paint_carrier`; translate every region through
    :meth:`map_region` and every point (probe, stimulus, synapse) through :meth:`map_locset`.
    """

    morphology: arbor.morphology
    labels: arbor.label_dict
    cv_policy: arbor.cv_policy
    radius_um: float
    rL_ohm_cm: float
    cm_uF_cm2: float
    rL_regions: tuple[tuple[str, float], ...]
    cm_regions: tuple[tuple[str, float], ...]
    cm_min_uF_cm2: float  # smallest CV capacitance: its CVs have radius a0
    pieces: tuple[Piece, ...]
    axial_paints: tuple[tuple[str, float], ...]
    diffusivity_paints: tuple[tuple[str, float], ...]
    default_diffusivity: float
    original_morphology: arbor.morphology
    original_labels: arbor.label_dict
    original_cv_policy: arbor.cv_policy
    _original: arbor.cable_cell = field(repr=False)
    _geoms: tuple[BranchGeometry, ...] = field(repr=False)
    _axial_units: dict = field(repr=False)
    _area_units: dict = field(repr=False)
    _resistivity: "_ResistivityProfile" = field(repr=False)

    @property
    def volume_to_capacitance(self) -> float:
        """K = vol/C = a/(2 cm) = a0/(2 cm_min), the same on every CV (µm / (µF/cm²))."""
        return self.radius_um / (2.0 * self.cm_min_uF_cm2)

    def cable_cell(self, decor: arbor.decor) -> arbor.cable_cell:
        """The transformed cell with ``decor`` (which should carry :meth:`paint_axial`)."""
        return arbor.cable_cell(self.morphology, decor, self.labels, self.cv_policy)

    def paint_axial(self, decor: arbor.decor) -> arbor.decor:
        """Paint the per-piece rL that keeps every face conductance (overrides any rL)."""
        decor.set_property(rL=self.rL_ohm_cm * U.Ohm * U.cm)
        for reg, rl in self.axial_paints:
            decor.paint(reg, rL=rl * U.Ohm * U.cm)
        return decor

    def paint_carrier(self, decor: arbor.decor, ion: str) -> arbor.decor:
        """Paint the per-piece diffusivity of carrier ``ion`` (also set its global default
        :attr:`default_diffusivity` with ``props.set_ion(..., diff=...)``)."""
        for reg, d in self.diffusivity_paints:
            decor.paint(reg, ion=ion, diff=d * U.m2 / U.s)
        return decor

    # -- location maps -----------------------------------------------------------------

    def map_location(self, branch: int, pos: float,
                     kind: Literal["axial", "area"] = "axial") -> tuple[int, float]:
        """Image of an original location.

        ``axial`` keeps the axial resistance to the half-CV ends, so Arbor's voltage
        interpolation is unchanged (probes, stimuli, synapses); ``area`` keeps the membrane
        area from the CV's start, so a paint covers the same fraction of every CV.
        """
        units = (self._axial_units if kind == "axial" else self._area_units).get(branch)
        if units is None or not (0.0 <= pos <= 1.0):
            raise GradgenError(f"location ({branch}, {pos}) is not on the cell")
        if kind == "axial":
            return branch, _map_in(units, pos, functools.partial(self._resistivity.integral, branch))
        return branch, _map_in(units, pos, self._geoms[branch].area)

    def map_region(self, expr: str) -> str:
        """A region expression of the original cell, baked into explicit cables of the new
        one (area-preserving, so partly covered CVs keep their covered fractions)."""
        parts = []
        for c in self._original.cables(expr):
            b, y0 = self.map_location(c.branch, float(c.prox), "area")
            _, y1 = self.map_location(c.branch, float(c.dist), "area")
            parts.append(cable_expr(b, y0, y1))
        return join_regions(parts)

    def map_locset(self, expr: str) -> str:
        """A locset expression of the original cell, baked into explicit locations of the
        new one (axial-resistance-preserving; multiplicities are kept)."""
        parts = []
        for loc in self._original.locations(expr):
            b, y = self.map_location(loc.branch, float(loc.pos), "axial")
            parts.append(f"(location {b} {float(y)!r})")
        return sum_locsets(parts)


def equivalent_cell(morphology: arbor.morphology, labels=None,
                    cv_policy: arbor.cv_policy | None = None, rL_ohm_cm: float = 100.0,
                    cm_uF_cm2: float = 1.0, *, radius_um: float | None = None,
                    rL_regions: Sequence[tuple[str, float]] = (),
                    cm_regions: Sequence[tuple[str, float]] = ()) -> EquivalentGeometry:
    """Transform a cell into an electrically identical one of common radius a0.

    Each half of a one-cable CV (and each cable of a fork CV) becomes a cylinder of radius a0
    and length A/(2π a0), so every CV keeps its membrane area; rL is painted per piece so its
    axial resistance, hence every face conductance, is unchanged; the carrier diffusivity is
    painted per piece from the measured :func:`carrier_law`. ``radius_um`` defaults to the
    smallest radius of the morphology (no piece gets shorter than it was). ``rL_regions``
    are per-region axial resistivities (region expression on the original cell, Ω·cm),
    applied in order over ``rL_ohm_cm`` like paints; the faces integrate rL/(πr²) as Arbor
    does. ``cm_regions`` (µF/cm²) likewise; a CV's radius is a0 times its area-weighted cm
    over the smallest one (see the module docstring for all limits).
    """
    if not (rL_ohm_cm > 0 and cm_uF_cm2 > 0 and all(v > 0 for _, v in [*rL_regions, *cm_regions])):
        raise GradgenError("equivalent_cell: rL and cm must be positive")
    labels = _as_label_dict(labels)
    if len(labels.iexprs):
        raise GradgenError(
            f"labels define iexprs ({', '.join(sorted(labels.iexprs))}); they would change "
            f"meaning on the transformed geometry",
            hint="use region labels and plain paint values, or disable the transform on a "
                 "uniform-radius cell")
    cv_policy = cv_policy or arbor.default_cv_policy()
    law = carrier_law()
    geoms = branch_geometries(morphology)
    a0 = float(radius_um) if radius_um is not None else min(g.radius_range()[0] for g in geoms)
    if not a0 > 0:
        raise GradgenError(f"equivalent_cell: radius_um must be positive, got {radius_um!r}")
    original = _original_cell(morphology, labels, cv_policy)
    layout = cv_layout(original)
    pieces = _pieces(geoms, layout)
    resistivity = _ResistivityProfile.of(original, geoms, rL_ohm_cm, rL_regions)
    capacitance = _ResistivityProfile.of(original, geoms, cm_uF_cm2, cm_regions)

    # new lengths (halves of a one-cable CV share its area equally), rL per piece; a CV's
    # radius follows its area-weighted cm, so that vol/C is the same on every CV
    cv_area: dict[int, float] = {}
    cv_charge: dict[int, float] = {}
    for p in pieces:
        cv_area[p.cv] = cv_area.get(p.cv, 0.0) + p.area_um2
        cv_charge[p.cv] = cv_charge.get(p.cv, 0.0) + capacitance.area_integral(p.branch, p.prox, p.dist)
    cv_cm = {cv: cv_charge[cv] / a if a > 0 else cm_uF_cm2 for cv, a in cv_area.items()}
    cm_min = min(cv_cm.values())
    radius = [a0 * cv_cm[p.cv] / cm_min for p in pieces]
    new_len = [(cv_area[p.cv] / 2 if p.half else p.area_um2) / (2 * math.pi * radius[q])
               for q, p in enumerate(pieces)]
    by_branch: dict[int, list[int]] = {}
    for q, p in enumerate(pieces):
        by_branch.setdefault(p.branch, []).append(q)
    new_pos: list[tuple[float, float]] = [(0.0, 0.0)] * len(pieces)
    branch_len = [0.0] * len(geoms)
    for b, qs in by_branch.items():
        qs.sort(key=lambda q: (pieces[q].prox, pieces[q].dist))
        total = sum(new_len[q] for q in qs)
        if total <= 0.0:
            raise GradgenError(f"branch {b} has no membrane area")
        branch_len[b] = total
        acc = 0.0
        for q in qs:
            y0 = acc / total
            acc += new_len[q]
            y1 = 1.0 if pieces[q].dist >= 1.0 else acc / total
            y0 = 0.0 if pieces[q].prox <= 0.0 else y0
            new_pos[q] = (y0, y1)
    span_len: dict[int, float] = {}
    for q, p in enumerate(pieces):
        if p.face >= 0:
            span_len[p.face] = span_len.get(p.face, 0.0) + new_len[q]
    full = []
    for q, p in enumerate(pieces):
        L = new_len[q]
        a = radius[q]
        resistance = resistivity.integral(p.branch, p.prox, p.dist)
        rl = resistance * math.pi * a ** 2 / L if L > 0 else rL_ohm_cm
        ell = span_len.get(p.face, 0.0) if p.face >= 0 else L
        d = law.diffusivity(a, ell, rl, cv_cm[p.cv]) if ell > 0 else 0.0
        full.append(Piece(p.cv, p.branch, p.prox, p.dist, p.area_um2, p.ixa_per_um, p.face,
                          p.half, new_pos[q][0], new_pos[q][1], L, rl, d, a))

    axial_units = {b: [_Unit(p.prox, p.dist, p.new_prox, p.new_dist,
                             resistivity.integral(p.branch, p.prox, p.dist))
                       for p in (full[q] for q in qs)] for b, qs in by_branch.items()}
    area_units = _area_units(full)
    morph_new = _build_morphology(morphology, geoms, area_units, branch_len)

    # explicit CV policy at the images of the CV heads (Arbor's cv_data_from_locset starts a
    # CV at each boundary point; a non-root CV's head is the start of its first cable)
    img = {}
    for p in full:
        img[p.branch, p.prox] = p.new_prox
        img[p.branch, p.dist] = p.new_dist
    heads = sorted({(cabs[0][0], img[cabs[0][0], cabs[0][1]])
                    for i, cabs in enumerate(layout.cables) if layout.parents[i] >= 0})
    policy = arbor.cv_policy_explicit(sum_locsets([f"(location {b} {y!r})" for b, y in heads]))

    axial = tuple((cable_expr(p.branch, p.new_prox, p.new_dist), p.rL_ohm_cm)
                  for p in full if p.new_length_um > 0)
    diff = tuple((cable_expr(p.branch, p.new_prox, p.new_dist), p.diffusivity_m2_s)
                 for p in full if p.new_length_um > 0)
    dvals = [d for _, d in diff]
    geo = EquivalentGeometry(
        morphology=morph_new, labels=arbor.label_dict(), cv_policy=policy, radius_um=a0,
        rL_ohm_cm=rL_ohm_cm, cm_uF_cm2=cm_uF_cm2, rL_regions=tuple(rL_regions),
        cm_regions=tuple(cm_regions), cm_min_uF_cm2=cm_min, pieces=tuple(full), axial_paints=axial,
        diffusivity_paints=diff, default_diffusivity=float(np.median(dvals)),
        original_morphology=morphology, original_labels=labels, original_cv_policy=cv_policy,
        _original=original, _geoms=tuple(geoms), _axial_units=axial_units,
        _area_units=area_units, _resistivity=resistivity)
    baked = {}
    for name in labels.regions:
        baked[name] = geo.map_region(f'"{name}"')
    for name in labels.locsets:
        baked[name] = geo.map_locset(f'"{name}"')
    geo = dataclasses.replace(geo, labels=arbor.label_dict(baked))
    _check_layout(geo, layout, img)
    return geo


def _build_morphology(morphology, geoms, area_units, branch_len) -> arbor.morphology:
    """Straight branches of each unit's radius, cut at piece ends and where the original tag changes."""
    tree = arbor.segment_tree()
    ends: dict[int, tuple[int, np.ndarray]] = {}
    nb = morphology.num_branches
    for b in range(nb):
        g = geoms[b]
        units = area_units[b]
        cuts = {u.new_prox for u in units} | {u.new_dist for u in units}
        # images of the tag changes, to cut segments there and read tags off
        tag_img = []
        for x, t in g.tag_changes():
            y = _map_in(units, x, g.area)
            tag_img.append((y, t))
            cuts.add(y)
        cuts = sorted(cuts)
        # merge cut points closer than 1e-12 µm
        merged = [cuts[0]]
        for c in cuts[1:]:
            if (c - merged[-1]) * branch_len[b] > 1e-9:
                merged.append(c)
        merged[-1] = 1.0
        segs = morphology.branch_segments(b)
        p0, p1 = segs[0].prox, segs[-1].dist
        chord = np.array([p1.x - p0.x, p1.y - p0.y, p1.z - p0.z], float)
        norm = np.linalg.norm(chord)
        direction = chord / norm if norm > 0 else np.array([1.0, 0.0, 0.0])
        parent_b = morphology.branch_parent(b)
        if parent_b == arbor.mnpos:
            parent_seg, origin = arbor.mnpos, np.zeros(3)
        else:
            parent_seg, origin = ends[parent_b]
        ys = [y for y, _ in tag_img]
        last = parent_seg
        starts = [u.new_prox for u in units]
        for y0, y1 in zip(merged[:-1], merged[1:]):
            k = max(int(np.searchsorted(ys, 0.5 * (y0 + y1), side="right")) - 1, 0)
            tag = tag_img[k][1]
            u = units[max(int(np.searchsorted(starts, 0.5 * (y0 + y1), side="right")) - 1, 0)]
            P0 = origin + direction * (y0 * branch_len[b])
            P1 = origin + direction * (y1 * branch_len[b])
            last = tree.append(last, arbor.mpoint(*P0, u.radius), arbor.mpoint(*P1, u.radius), tag=tag)
        ends[b] = (last, origin + direction * branch_len[b])
    new = arbor.morphology(tree)
    if new.num_branches != nb or any(new.branch_parent(b) != morphology.branch_parent(b)
                                     for b in range(nb)):
        raise GradgenError("internal: the transformed morphology has a different branch "
                           "structure", hint="please report this morphology")
    return new


@dataclass(frozen=True)
class _ResistivityProfile:
    """Piecewise-constant rL (Ω·cm) per branch: (prox, dist, rL) intervals covering [0, 1]
    (also used for cm, integrated over area)."""

    geoms: tuple[BranchGeometry, ...]
    intervals: dict[int, list[tuple[float, float, float]]]

    @staticmethod
    def of(original: arbor.cable_cell, geoms: list[BranchGeometry], rL: float,
           regions: Sequence[tuple[str, float]]) -> "_ResistivityProfile":
        intervals = {b: [(0.0, 1.0, rL)] for b in range(len(geoms))}
        for expr, value in regions:
            for c in original.cables(expr):
                x0, x1 = float(c.prox), float(c.dist)
                if x1 <= x0:
                    continue
                old = intervals[c.branch]
                new = [(a, min(b, x0), r) for a, b, r in old if a < x0]
                new.append((x0, x1, float(value)))
                new += [(max(a, x1), b, r) for a, b, r in old if b > x1]
                intervals[c.branch] = new
        return _ResistivityProfile(tuple(geoms), intervals)

    def integral(self, branch: int, x0: float, x1: float) -> float:
        """∫ rL/(πr²) dx between branch positions x0 < x1 (Ω·cm/µm), as Arbor's faces use."""
        g = self.geoms[branch]
        total = 0.0
        for a, b, r in self.intervals[branch]:
            lo, hi = max(a, x0), min(b, x1)
            if hi > lo:
                total += r * g.ixa(lo, hi)
        return total

    def area_integral(self, branch: int, x0: float, x1: float) -> float:
        """∫ value · dA between branch positions x0 < x1 (value · µm²)."""
        g = self.geoms[branch]
        return sum(r * g.area(max(a, x0), min(b, x1)) for a, b, r in self.intervals[branch]
                   if min(b, x1) > max(a, x0))


@dataclass(frozen=True)
class _Unit:
    """A stretch of an original branch and its image, with its total area or ixa."""

    prox: float
    dist: float
    new_prox: float
    new_dist: float
    weight: float
    radius: float = 0.0  # on the new cell (area units)


def _area_units(pieces: list[Piece]) -> dict[int, list[_Unit]]:
    """Per branch, one unit per CV cable (the two halves of a one-cable CV merged)."""
    units: dict[int, list[_Unit]] = {}
    k = 0
    while k < len(pieces):
        p = pieces[k]
        if p.half:
            p2 = pieces[k + 1]
            u = _Unit(p.prox, p2.dist, p.new_prox, p2.new_dist, p.area_um2 + p2.area_um2, p.radius_um)
            k += 2
        else:
            u = _Unit(p.prox, p.dist, p.new_prox, p.new_dist, p.area_um2, p.radius_um)
            k += 1
        units.setdefault(p.branch, []).append(u)
    for b in units:
        units[b].sort(key=lambda u: (u.prox, u.dist))
    return units


def _map_in(units: list[_Unit], pos: float, integral) -> float:
    """Map ``pos`` through the unit containing it, keeping ``integral`` fractions."""
    starts = [u.prox for u in units]
    k = min(max(int(np.searchsorted(starts, pos, side="right")) - 1, 0), len(units) - 1)
    u = units[k]
    if pos <= u.prox:
        return u.new_prox
    if pos >= u.dist:
        return u.new_dist
    frac = integral(u.prox, pos) / u.weight
    return u.new_prox + (u.new_dist - u.new_prox) * min(max(frac, 0.0), 1.0)


def _check_layout(geo: EquivalentGeometry, layout: CvLayout, img) -> None:
    new = cv_layout(geo.cable_cell(arbor.decor()))
    ok = new.parents == layout.parents and len(new.cables) == len(layout.cables)
    if ok:
        for cabs, ncabs in zip(layout.cables, new.cables):
            want = [(b, img[b, x0], img[b, x1]) for b, x0, x1 in cabs]
            if len(want) != len(ncabs) or any(
                    w[0] != n[0] or abs(w[1] - n[1]) > 1e-9 or abs(w[2] - n[2]) > 1e-9
                    for w, n in zip(want, ncabs)):
                ok = False
                break
    if not ok:
        raise GradgenError("internal: the transformed cell's CVs are not the images of the "
                           "original CVs", hint="please report this morphology and CV policy")
