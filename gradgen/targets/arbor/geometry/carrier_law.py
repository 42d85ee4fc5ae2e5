"""How Arbor's ion diffusion must be tuned to equal the cable operator, measured.

Once per process, a few one-step runs measure how Arbor scales ion diffusion with CV
length and radius (:func:`carrier_law`), instead of trusting a formula that a later Arbor
may change; :func:`carrier_diffusivity` then gives the carriers' diffusivity.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.protocol import CALIBRATION_ION
from gradgen.targets.arbor.geometry.layout import (
    branch_geometries,
    cable_expr,
    carrier_properties,
)
from gradgen.targets.arbor.recipe import run_and_sample

# --------------------------------------------------------------------------------------------
# The carrier law, measured
# --------------------------------------------------------------------------------------------

_CAL_ION = CALIBRATION_ION
_CAL_RL = 100.0  # Ω·cm
_CAL_CM = 1.0  # µF/cm²
_CAL_DT = 0.025  # ms
_CAL_D = 1e-9  # m²/s


@dataclass(frozen=True)
class CarrierLaw:
    """How Arbor's ion diffusion must be tuned to equal the cable operator.

    For a uniform cylinder of radius a (µm) cut into CVs of length h (µm), with axial
    resistivity rL (Ω·cm) and capacitance cm (µF/cm²), the diffusivity that makes Xd relax
    exactly like V is ``coefficient · a**radius_exponent · h**length_exponent / (rL · cm)``
    (m²/s). On a face whose span has length ℓ (µm) and is made of pieces q with resistivity
    rL_q on a common radius, painting D_q = diffusivity(a, ℓ, rL_q, cm) on each piece matches
    the face exactly (checked at calibration). Arbor 0.12.2 measures length_exponent = -1:
    its face coefficient grows with the span instead of shrinking.
    """

    coefficient: float
    length_exponent: int
    radius_exponent: int
    measured_length_exponent: float
    measured_radius_exponent: float
    span_law_error: float

    def diffusivity(self, radius_um: float, length_um: float, rL_ohm_cm: float,
                    cm_uF_cm2: float) -> float:
        return (self.coefficient * radius_um ** self.radius_exponent
                * length_um ** self.length_exponent / (rL_ohm_cm * cm_uF_cm2))


def _cal_cylinder(radius: float, cv_lengths: list[float], profile: list[float],
                  rL_halves: list[float] | None = None,
                  d_halves: list[float] | None = None, d_all: float | None = None):
    """A straight cylinder with explicit CVs, V and Xd both starting at ``profile``."""
    total = sum(cv_lengths)
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, radius), arbor.mpoint(total, 0, 0, radius),
                tag=1)
    bounds = np.concatenate([[0.0], np.cumsum(cv_lengths)]) / total
    decor = arbor.decor()
    decor.set_property(Vm=0 * U.mV, cm=_CAL_CM * 0.01 * U.F / U.m2, rL=_CAL_RL * U.Ohm * U.cm)
    halves = []
    for i, p in enumerate(profile):
        reg = cable_expr(0, float(bounds[i]), float(bounds[i + 1]))
        decor.paint(reg, Vm=p * U.mV)
        decor.paint(reg, ion=_CAL_ION, int_con=p * U.mM)
        mid = 0.5 * (bounds[i] + bounds[i + 1])
        halves += [(float(bounds[i]), float(mid)), (float(mid), float(bounds[i + 1]))]
    if d_all is not None:
        decor.paint("(all)", ion=_CAL_ION, diff=d_all * U.m2 / U.s)
    for q, (x0, x1) in enumerate(halves):
        if rL_halves is not None:
            decor.paint(cable_expr(0, x0, x1), rL=rL_halves[q] * U.Ohm * U.cm)
        if d_halves is not None:
            decor.paint(cable_expr(0, x0, x1), ion=_CAL_ION, diff=d_halves[q] * U.m2 / U.s)
    locs = " ".join(f"(location 0 {float(b)!r})" for b in bounds[1:-1])
    policy = arbor.cv_policy_explicit(f"(join {locs} (locset-nil))")
    cell = arbor.cable_cell(arbor.morphology(tree), decor, arbor.label_dict(), policy)
    probes = []
    for i in range(len(profile)):
        loc = f"(location 0 {float(0.5 * (bounds[i] + bounds[i + 1]))!r})"
        probes += [(arbor.cable_probe_membrane_voltage(loc, f"v{i}"), f"v{i}"),
                   (arbor.cable_probe_ion_diff_concentration(loc, _CAL_ION, f"x{i}"), f"x{i}")]
    return cell, probes


def _one_step(cells_probes) -> list[tuple[np.ndarray, np.ndarray]]:
    cells = [c for c, _ in cells_probes]
    probes = [p for _, p in cells_probes]
    out = run_and_sample(cells, probes, carrier_properties(_CAL_ION, _CAL_D),
                            t_end=1.5 * _CAL_DT, dt=_CAL_DT, times=[_CAL_DT])
    res = []
    for gid, plist in enumerate(probes):
        n = len(plist) // 2
        v = np.array([out[gid, f"v{i}"][1][0] for i in range(n)])
        x = np.array([out[gid, f"x{i}"][1][0] for i in range(n)])
        res.append((v, x))
    return res


def _near_int(value: float, allowed: Iterable[int], what: str, tol: float = 1e-6) -> int:
    k = int(round(value))
    if abs(value - k) > tol or k not in set(allowed):
        raise GradgenError(
            f"Arbor's ion diffusion follows a law gradgen does not understand: the matching "
            f"diffusivity scales with the {what} to the power {value:.6g}",
            hint="this Arbor version changed ion diffusion; update gradgen.targets.arbor.geometry.carrier_law's "
                 "calibration (gradgen supports Arbor 0.12)")
    return k


@functools.cache
def carrier_law() -> CarrierLaw:
    """Measure Arbor's ion-diffusion scaling with a few one-step runs (cached per process).

    Two-CV cylinders of two radii and two CV lengths start with V = ±1 mV and Xd = ±1 mM; one
    backward-Euler step of each gives the relaxation rates, whose ratio is the matching D.
    The exponents must be integers of a known kind, D must enter linearly, and a three-CV
    cylinder with uneven CVs and rL varying per half-CV must then mirror V to 1e-9.
    """
    shapes = [(0.5, 2.0), (0.5, 8.0), (2.0, 2.0), (2.0, 8.0)]
    runs = [_cal_cylinder(a, [h, h], [1.0, -1.0]) for a, h in shapes]
    runs.append(_cal_cylinder(0.5, [2.0, 2.0], [1.0, -1.0], d_all=10 * _CAL_D))
    results = _one_step(runs)

    def rate(values: np.ndarray) -> float:
        d1 = values[0] - values[1]
        return (2.0 / d1 - 1.0) / (2.0 * _CAL_DT)

    match = {}
    for (a, h), (v, x) in zip(shapes, results):
        match[a, h] = _CAL_D * rate(v) / rate(x)
    linear = rate(results[4][1]) / rate(results[0][1])
    if abs(linear / 10.0 - 1.0) > 1e-9:
        raise GradgenError(f"Arbor's ion diffusion is not linear in the diffusivity "
                           f"(×10 D gave ×{linear:.6g} rate)",
                           hint="gradgen supports Arbor 0.12")
    beta_a = math.log(match[0.5, 8.0] / match[0.5, 2.0]) / math.log(4.0)
    beta_b = math.log(match[2.0, 8.0] / match[2.0, 2.0]) / math.log(4.0)
    alpha_a = math.log(match[2.0, 2.0] / match[0.5, 2.0]) / math.log(4.0)
    alpha_b = math.log(match[2.0, 8.0] / match[0.5, 8.0]) / math.log(4.0)
    beta = _near_int(0.5 * (beta_a + beta_b), range(-2, 2), "CV length")
    alpha = _near_int(0.5 * (alpha_a + alpha_b), [1], "radius")
    if abs(beta_a - beta_b) > 1e-6 or abs(alpha_a - alpha_b) > 1e-6:
        raise GradgenError("Arbor's ion diffusion does not separate into radius and CV-length "
                           "factors", hint="gradgen supports Arbor 0.12")
    coeffs = [match[a, h] * _CAL_RL * _CAL_CM / (a ** alpha * h ** beta) for a, h in shapes]
    coefficient = float(np.mean(coeffs))
    if max(abs(c / coefficient - 1.0) for c in coeffs) > 1e-9:
        raise GradgenError("Arbor's ion-diffusion calibration is inconsistent",
                           hint="gradgen supports Arbor 0.12")
    law = CarrierLaw(coefficient, beta, alpha, 0.5 * (beta_a + beta_b),
                     0.5 * (alpha_a + alpha_b), float("nan"))
    err = _span_law_error(law)
    if err > 1e-9:
        raise GradgenError(
            f"Arbor's ion diffusion does not combine per-piece diffusivities as gradgen "
            f"expects (one-step mirror error {err:.3g})", hint="gradgen supports Arbor 0.12")
    return CarrierLaw(coefficient, beta, alpha, law.measured_length_exponent,
                      law.measured_radius_exponent, err)


def _span_law_error(law: CarrierLaw) -> float:
    """One step of V vs Xd on uneven CVs (2, 3, 5 µm) with rL varying per half-CV."""
    a = 0.5
    cv_len = [2.0, 3.0, 5.0]
    rl = [100.0, 60.0, 150.0, 80.0, 120.0, 90.0]
    # halves 1+2 form the span of face 0-1, halves 3+4 the span of face 1-2
    span = [1.0, 2.5, 2.5, 4.0, 4.0, 2.5]
    d = [law.diffusivity(a, span[q], rl[q], _CAL_CM) for q in range(6)]
    profile = [1.0, -0.5, 0.25]
    (v, x), = _one_step([_cal_cylinder(a, cv_len, profile, rL_halves=rl, d_halves=d)])
    return float(np.max(np.abs(v - x)))


def carrier_diffusivity(radius_um: float, cv_length_um: float, rL_ohm_cm: float,
                        cm_uF_cm2: float) -> float:
    """Diffusivity (m²/s) that makes Xd on a uniform cylinder of CVs of length ``cv_length_um``
    relax exactly like the membrane voltage (no membrane current).

    Uses the law measured by :func:`carrier_law` (Arbor 0.12.2: 1e-5·a/(2·rL·cm·h) with cm in
    F/m²), so a future Arbor with a different CV-length scaling is detected, not trusted.
    """
    for name, value in (("radius_um", radius_um), ("cv_length_um", cv_length_um),
                        ("rL_ohm_cm", rL_ohm_cm), ("cm_uF_cm2", cm_uF_cm2)):
        if not (value > 0.0 and math.isfinite(value)):
            raise GradgenError(f"carrier_diffusivity: {name} must be positive, got {value!r}")
    return carrier_law().diffusivity(radius_um, cv_length_um, rL_ohm_cm, cm_uF_cm2)


# --------------------------------------------------------------------------------------------
# Uniformity test
# --------------------------------------------------------------------------------------------

def worst_radius_ratio(morphology: arbor.morphology) -> float:
    """Largest over smallest radius on the segments of positive length (1.0 = uniform)."""
    ranges = [g.radius_range() for g in branch_geometries(morphology)]
    return max(r[1] for r in ranges) / min(r[0] for r in ranges)


def radius_is_uniform(morphology: arbor.morphology, cv_policy: arbor.cv_policy | None = None,
                      *, rtol: float = 1e-9) -> bool:
    """True when a diffusive carrier on the *untransformed* cell can be exact.

    Exactness needs one radius everywhere (vol/C equal on every CV and no taper inside a face
    span), whatever the CV policy; ``cv_policy`` is accepted for symmetry with
    :func:`equivalent_cell` and does not change the answer. Even then D must follow the span
    lengths of the policy: use :func:`equivalent_cell`, which is the identity on such cells.
    """
    del cv_policy
    return worst_radius_ratio(morphology) <= 1.0 + rtol
