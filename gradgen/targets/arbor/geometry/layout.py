"""Small Arbor helpers for :mod:`gradgen.targets.arbor.geometry.transform`: exact cable integrals and one-off runs.

The geometry transform has to reproduce, to rounding error, the numbers Arbor 0.12 computes
from a morphology (CV areas, axial resistances, branch positions), so the integrals here use
the same closed forms as Arbor's embedding: a segment is a frustum whose radius varies
linearly with length, its lateral area is π(r0+r1)·√(Δr²+Δx²) and its resistance factor
∫dx/(πr²) = Δx/(π r0 r1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError


@dataclass(frozen=True)
class BranchGeometry:
    """The frusta of one Arbor branch, indexed by length from the branch head (µm)."""

    length: float
    starts: np.ndarray  # cumulative length at each segment boundary, len n+1
    r0: np.ndarray
    r1: np.ndarray
    tags: np.ndarray

    def _radius(self, k: int, u: float) -> float:
        seg_len = self.starts[k + 1] - self.starts[k]
        if seg_len <= 0.0:
            return float(self.r0[k])
        f = (u - self.starts[k]) / seg_len
        return float(self.r0[k] + (self.r1[k] - self.r0[k]) * f)

    def _pieces(self, x0: float, x1: float):
        """Yield (segment, u0, u1) for the parts of [x0, x1] (branch positions) per segment."""
        u0, u1 = x0 * self.length, x1 * self.length
        if u1 <= u0:
            return
        k = max(int(np.searchsorted(self.starts, u0, side="right")) - 1, 0)
        n = len(self.r0)
        while k < n and self.starts[k] < u1:
            a, b = max(u0, self.starts[k]), min(u1, self.starts[k + 1])
            if b > a:
                yield k, a, b
            k += 1

    def area(self, x0: float, x1: float) -> float:
        """Lateral membrane area of the branch between positions x0 < x1 (µm²)."""
        total = 0.0
        for k, a, b in self._pieces(x0, x1):
            ra, rb = self._radius(k, a), self._radius(k, b)
            total += math.pi * (ra + rb) * math.hypot(rb - ra, b - a)
        return total

    def ixa(self, x0: float, x1: float) -> float:
        """Axial resistance factor ∫dx/(πr²) between positions x0 < x1 (1/µm)."""
        total = 0.0
        for k, a, b in self._pieces(x0, x1):
            ra, rb = self._radius(k, a), self._radius(k, b)
            total += (b - a) / (math.pi * ra * rb)
        return total

    def radius_range(self) -> tuple[float, float]:
        """Smallest and largest radius on segments of positive length."""
        keep = np.diff(self.starts) > 0
        r = np.concatenate([self.r0[keep], self.r1[keep]])
        return float(r.min()), float(r.max())

    def tag_changes(self) -> list[tuple[float, int]]:
        """(position, tag) at the head of the branch and wherever the tag changes."""
        out: list[tuple[float, int]] = []
        for k in range(len(self.tags)):
            if self.starts[k + 1] <= self.starts[k]:
                continue  # zero-length segments occupy no position
            tag = int(self.tags[k])
            if not out or out[-1][1] != tag:
                out.append((float(self.starts[k] / self.length), tag))
        return out


def branch_geometries(morph: arbor.morphology) -> list[BranchGeometry]:
    """Per-branch frusta of a morphology; refuses non-positive radii and empty branches."""
    out = []
    for b in range(morph.num_branches):
        segs = morph.branch_segments(b)
        lens, r0, r1, tags = [], [], [], []
        for s in segs:
            p, d = s.prox, s.dist
            lens.append(math.dist((p.x, p.y, p.z), (d.x, d.y, d.z)))
            r0.append(p.radius)
            r1.append(d.radius)
            tags.append(s.tag)
        starts = np.concatenate([[0.0], np.cumsum(lens)])
        length = float(starts[-1])
        if length <= 0.0:
            raise GradgenError(
                f"branch {b} of the morphology has zero length",
                hint="remove zero-length branches before computing gradients",
            )
        geo = BranchGeometry(length, starts, np.asarray(r0, float), np.asarray(r1, float),
                             np.asarray(tags, int))
        if geo.radius_range()[0] <= 0.0:
            raise GradgenError(f"branch {b} of the morphology has a non-positive radius",
                               hint="fix the radii of the reconstruction")
        out.append(geo)
    return out


@dataclass(frozen=True)
class CvLayout:
    """Arbor's CVs of one cell: cables (branch, prox, dist) and parent CV (-1 at the root)."""

    cables: tuple[tuple[tuple[int, float, float], ...], ...]
    parents: tuple[int, ...]


def cv_layout(cell: arbor.cable_cell) -> CvLayout:
    data = arbor.cv_data(cell)
    if data is None:  # pragma: no cover - cable_cell always has a policy in 0.12
        raise GradgenError("the cell has no CV policy")
    cables = tuple(tuple((c.branch, float(c.prox), float(c.dist)) for c in data.cables(i))
                   for i in range(data.num_cv))
    parents = tuple(int(data.parent(i)) if data.parent(i) != arbor.mnpos else -1
                    for i in range(data.num_cv))
    return CvLayout(cables, parents)


# --- expressions ---------------------------------------------------------------------------

def cable_expr(branch: int, prox: float, dist: float) -> str:
    return f"(cable {int(branch)} {float(prox)!r} {float(dist)!r})"


def join_regions(parts: Sequence[str]) -> str:
    if not parts:
        return "(region-nil)"
    if len(parts) == 1:
        return parts[0]
    return "(join " + " ".join(parts) + ")"


def sum_locsets(parts: Sequence[str]) -> str:
    if not parts:
        return "(locset-nil)"
    if len(parts) == 1:
        return parts[0]
    return "(sum " + " ".join(parts) + ")"


# --- running cells -----------------------------------------------------------------------

def carrier_properties(ion: str | None = None, diffusivity: float = 1e-9):
    """Neuron-like global properties with an optional diffusive carrier ion (valence 1, 0 mM)."""
    props = arbor.neuron_cable_properties()
    if ion is not None:
        props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM, rev_pot=0 * U.mV,
                      diff=diffusivity * U.m2 / U.s)
    return props
