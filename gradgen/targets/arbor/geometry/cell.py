"""The gradient cell's geometry of one :class:`CellSpec`: transformed and checked once.

The carriers' ion diffusion equals the voltage operator only on one common radius, so each
gradient cell runs on the electrically identical constant-radius cell of
:mod:`gradgen.targets.arbor.geometry.transform`. Building it and its voltage check costs
0.1–1 s, so the result is kept on the spec itself (no module-level cache) for tuning loops
that simulate one spec many times.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from gradgen.errors import GradgenError
from gradgen.targets.arbor.decor import CellSpec, Membrane
from gradgen.targets.arbor.geometry.check import check_equivalence
from gradgen.targets.arbor.geometry.transform import (
    EquivalentGeometry,
    equivalent_cell,
    worst_radius_ratio,
)

#: Short hh + pas run comparing the transformed with the original cell, once per spec.
EQUIVALENCE_T_END_MS = 50.0
#: Largest accepted |V_transformed − V_original|. Measured ≤ 4e-8 mV over 250 ms on the
#: acceptance cells (rounding, at the level of merely translating the cell); a transform
#: that were wrong for some geometry would show up orders of magnitude above this.
EQUIVALENCE_TOLERANCE_MV = 1e-5

log = logging.getLogger("gradgen")


@dataclass(frozen=True)
class CellGeometry:
    """The equivalent constant-radius geometry of a spec and its start-up check
    (:func:`gradgen.targets.arbor.geometry.check.check_equivalence`: hh + pas, 0.2 nA into the root)."""

    equivalent: EquivalentGeometry
    check: dict

    @property
    def max_abs_dV_mV(self) -> float:
        """max |V_transformed − V_original| of the check run."""
        return self.check["max_abs_dV_mV"]


def cell_geometry(spec: CellSpec, membrane: Membrane) -> CellGeometry:
    """Transform and check the spec's cell, kept on the spec (keyed by its morphology, labels,
    CV policy and membrane constants); refuses what the transform cannot represent."""
    inputs = (spec.morphology, spec.labels, spec.cv_policy)
    key = ("geometry", *map(id, inputs), membrane.cm, membrane.rL, membrane.rL_regions, membrane.cm_regions)
    hit = spec.derived.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], inputs)):
        return hit[1]
    uniform = worst_radius_ratio(spec.morphology) <= 1.0 + 1e-9
    diffusive = spec.decor.diffusive_ions()
    if diffusive and not uniform:
        raise GradgenError(
            f"ion(s) {', '.join(sorted(set(diffusive)))} diffuse: the gradient cell runs on a "
            "constant-radius equivalent geometry where their diffusion would change",
            hint="remove the ion diffusivity, or use a constant-radius morphology")
    geo = equivalent_cell(spec.morphology, spec.labels, spec.cv_policy, membrane.rL, membrane.cm,
                          rL_regions=membrane.rL_regions, cm_regions=membrane.cm_regions)
    check = check_equivalence(geo, t_end=EQUIVALENCE_T_END_MS)
    if not check["max_abs_dV_mV"] <= EQUIVALENCE_TOLERANCE_MV:
        raise GradgenError(
            f"the constant-radius equivalent of this cell changes the voltage by "
            f"{check['max_abs_dV_mV']:.3g} mV (expected ≤ {EQUIVALENCE_TOLERANCE_MV:g} mV); its "
            "gradients would be off by a similar relative amount",
            hint="please report this morphology and CV policy")
    log.info("gradient cell: constant-radius equivalent (radius %.4g µm, %d pieces), "
             "max |V_transformed - V_original| = %.3g mV over %g ms",
             geo.radius_um, len(geo.pieces), check["max_abs_dV_mV"], EQUIVALENCE_T_END_MS)
    found = CellGeometry(geo, check)
    spec.derived[key] = (inputs, found)
    return found
