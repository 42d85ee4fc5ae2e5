"""The shadow carrier: per θ_k a copy of the instrumented cells whose voltage is u_k = dV/dθ_k.

NEURON's fixed step solves (C/Δt + G + A)·ΔV = −I(V^n) + axial terms, with G the membrane
conductance at V^n and A the cable's axial coupling. Its derivative in θ_k is the same
matrix applied to Δu_k, with the sources of u_k (∂I/∂s·σ_k, ∂I/∂θ_k) and the conductance
change dG_k·(V^{n+1} − V^n) on the right. A copy of the cell with the same sections,
geometry, cm and Ra has the same C and A; its membrane mechanism
(:data:`gradgen.protocol.SHADOW_MECHANISM`) draws g·u + source, so NEURON builds the same
matrix and solves u_k with it — branch points, diameter steps and tapers included, with no
split between membrane and cable. The sources need V^{n+1}, known only after the step that
computes it, so the shadow cells run one step behind: the solve of step n+1 gives u^{n+1}
from the sums gathered in the state update of step n (:meth:`ShadowCells.lag`).
"""
from __future__ import annotations

from typing import Any, Sequence

from gradgen.errors import GradgenError
from gradgen.protocol import (
    CONDUCTANCE_ION,
    HUB_NAME,
    SHADOW_CONDUCTANCE,
    SHADOW_MECHANISM,
    SHADOW_SOURCE,
    concentration,
    scratch_ion,
    shadow_section,
    shadow_voltage,
)

#: area and axial resistance of a copied segment against the original's: both are computed
#: by NEURON from the same numbers, so they agree to rounding
GEOMETRY_RTOL = 1e-12


def _copy_section(h: Any, sec: Any, name: str) -> Any:
    """A section with ``sec``'s segments, 3-D points (or L and diameters), cm and Ra."""
    copy = h.Section(name=name)
    n3d = int(h.n3d(sec=sec))
    if n3d:
        for i in range(n3d):
            h.pt3dadd(h.x3d(i, sec=sec), h.y3d(i, sec=sec), h.z3d(i, sec=sec), h.diam3d(i, sec=sec), sec=copy)
    else:
        copy.L = sec.L
    copy.nseg = sec.nseg
    copy.Ra = sec.Ra
    for theirs, ours in zip(sec, copy):
        if not n3d:
            ours.diam = theirs.diam
        ours.cm = theirs.cm
    return copy


class ShadowCells:
    """The K shadow copies of ``sections`` (whole cells with the hub inserted), wired to them."""

    #: u_k recorded at step n is the derivative of V at step n − 1
    lag = 1

    def __init__(self, h: Any, sections: Sequence[Any], n_params: int):
        self.h = h
        self.sections = list(sections)  # kept alive: the shadows' POINTERs read their data
        self.copies: list[dict[Any, Any]] = [
            {sec: _copy_section(h, sec, shadow_section(k, sec.name())) for sec in self.sections}
            for k in range(n_params)]
        for k, copies in enumerate(self.copies):
            for sec in self.sections:
                parent = h.SectionRef(sec=sec)
                if parent.has_parent():
                    copies[sec].connect(copies[parent.parent](h.parent_connection(sec=sec)),
                                        h.section_orientation(sec=sec))
        for k, copies in enumerate(self.copies):
            for sec, copy in copies.items():
                copy.insert(SHADOW_MECHANISM)
                for main, shadow in zip(sec, copy):
                    mech = getattr(shadow, SHADOW_MECHANISM)
                    h.setpointer(getattr(main, f"_ref_{concentration(CONDUCTANCE_ION)}"), SHADOW_CONDUCTANCE, mech)
                    h.setpointer(getattr(main, f"_ref_{concentration(scratch_ion(k))}"), SHADOW_SOURCE, mech)
                    h.setpointer(shadow._ref_v, shadow_voltage(k), getattr(main, HUB_NAME))
        self._check_geometry()
        # u^0 = 0: the shadow voltages start at 0 whatever v_init is (before INITIAL blocks)
        self.initializer = h.FInitializeHandler(0, self._zero)

    def _check_geometry(self) -> None:
        for copies in self.copies:
            for sec, copy in copies.items():
                for main, shadow in zip(sec, copy):
                    for what in ("area", "ri"):
                        a, b = getattr(main, what)(), getattr(shadow, what)()
                        if abs(a - b) > GEOMETRY_RTOL * abs(a):
                            raise GradgenError(f"the shadow copy of {sec.name()}({main.x:g}) has {what} {b!r}, "
                                               f"not {a!r}", hint="report this with the model")

    def _zero(self) -> None:
        for copies in self.copies:
            for copy in copies.values():
                for seg in copy:
                    seg.v = 0.0

    def reference(self, seg: Any, k: int) -> Any:
        """NEURON's reference to u_k at the main cell's segment ``seg``."""
        return self.copies[k][seg.sec](seg.x)._ref_v

    def release(self) -> None:
        """Delete the shadow cells and take the hub out of the main cell (its POINTERs would
        dangle); the main cell keeps its gradient mechanisms and runs as before."""
        for sec in self.sections:
            if sec.has_membrane(HUB_NAME):
                sec.uninsert(HUB_NAME)
        self.copies.clear()
        self.initializer = None
