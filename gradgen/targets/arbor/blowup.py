"""Detect a simulation that blew up, from the traces it already sampled (no extra run).

A negative conductance or a time step far beyond the membrane's fastest time constant makes
Arbor's V (and the sensitivities that follow it) overflow to NaN or infinity; without this
check the NaN reached the loss, the optimizer and the JSON silently.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradgen.errors import NonFiniteSimulation


def first_nonfinite(t: np.ndarray, v: np.ndarray, dv: np.ndarray | None,
                    sites: Sequence[str]) -> NonFiniteSimulation | None:
    """The earliest non-finite sample of V [site, t] or dV/dθ [site, k, t], as an error."""
    found: list[tuple[int, str, str]] = []
    bad_v = ~np.isfinite(v)
    if bad_v.any():
        site, step = np.argwhere(bad_v)[np.argmin(np.argwhere(bad_v)[:, 1])]
        found.append((int(step), "V", sites[site]))
    if dv is not None and dv.size:
        bad_dv = ~np.isfinite(dv)
        if bad_dv.any():
            where = np.argwhere(bad_dv)
            site, k, step = where[np.argmin(where[:, 2])]
            found.append((int(step), f"dV/dθ{k}", sites[site]))
    if not found:
        return None
    step, what, site = min(found)
    return NonFiniteSimulation(what, float(t[step]), site)


def check_finite(t: np.ndarray, v: np.ndarray, dv: np.ndarray | None, sites: Sequence[str]) -> None:
    """Raise :class:`NonFiniteSimulation` at the first non-finite sample, if any."""
    error = first_nonfinite(t, v, dv, sites)
    if error is not None:
        raise error
