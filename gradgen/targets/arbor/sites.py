"""Where things are on a built cell: CV lengths and the CV (and its centre) of a location.

Arbor interpolates V between CV centres while dV/dθ is per CV, so probes are moved to CV
centres; the homeostatic error site and the tuning probes find their CV the same way.
"""
from __future__ import annotations

import arbor
import numpy as np

from gradgen.errors import GradgenError


def cv_lengths(cell: arbor.cable_cell, morphology: arbor.morphology) -> list[float]:
    """Length (µm) of every CV of a built cell."""
    data = arbor.cv_data(cell)
    lengths = []
    for i in range(data.num_cv):
        lengths.append(sum(_cable_length(morphology, c) for c in data.cables(i)))
    return lengths


def _cable_length(morphology: arbor.morphology, cable) -> float:
    segs = morphology.branch_segments(cable.branch)
    length = sum(np.linalg.norm(np.subtract((s.dist.x, s.dist.y, s.dist.z),
                                            (s.prox.x, s.prox.y, s.prox.z))) for s in segs)
    return length * (cable.dist - cable.prox)


def cv_of(cell: arbor.cable_cell, site: str, what: str = "probe site") -> tuple[int, list]:
    """The index and cables of the CV that holds the single location ``site``."""
    locations = cell.locations(site)
    if len(locations) != 1:
        raise GradgenError(f"{what} {site!r} must name exactly one location (got {len(locations)})")
    loc = locations[0]
    data = arbor.cv_data(cell)
    for i in range(data.num_cv):
        cables = data.cables(i)
        if any(c.branch == loc.branch and c.prox <= loc.pos <= c.dist and c.dist > c.prox for c in cables):
            return i, cables
    raise GradgenError(f"{what} {site!r} lies in no CV")


def cv_centre(cell: arbor.cable_cell, site: str) -> str:
    """The centre of the CV that holds the location ``site``, as a location expression."""
    _, cables = cv_of(cell, site)
    if len(cables) != 1:
        raise GradgenError(f"probe site {site!r} lies in a fork CV", hint="move it into a branch")
    c = cables[0]
    return f"(location {c.branch} {0.5 * (c.prox + c.dist)!r})"
