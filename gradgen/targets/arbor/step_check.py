"""Warn when the time step is too coarse for accurate gradients, before the run, for free.

The fastest membrane time constant a cell can reach is bounded below by
τ_min = C_m / Σ ḡ, the capacitance over the sum of the maximal conductances (PARAMETERs in
S/cm²) painted on one region: no channel can conduct more than its ḡ. The bound needs no
simulation, only the .mod defaults and the painted values.

Calibration, measured (README "Accuracy", benchmarks/results/accuracy.json): on the HH cable
and the HH axon with soma (ḡ = 0.12 + 0.036 + 0.0003 S/cm², C_m = 1 µF/cm², so
τ_min = 0.0064 ms) the worst relative error of dV/dθ against finite differences is 0.89 % at
dt = 0.01 ms and 4.24 % at dt = 0.025 ms (250 ms runs); the log-log slope between them
(1.72) puts the 1 % crossing at dt = 0.0107 ms, i.e. at dt / τ_min = 1.67. Above that ratio
the gradient error is expected to exceed 1 %; far above it (dt = 10 ms gives ratio 2600 on
HH) the step is unstable or meaningless (V of 145 mV on the HH cable).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from gradgen.errors import GradgenError, GradgenWarning

_HH_GBAR_SUM_S_CM2 = 0.12 + 0.036 + 0.0003
_HH_TAU_MIN_MS = 1.0 / (1000.0 * _HH_GBAR_SUM_S_CM2)  # C_m 1 µF/cm² over 156.3 mS/cm²
_HH_DT_AT_1_PERCENT_MS = 0.0107
#: dt / τ_min at which the measured gradient error passes 1 % (see the module docstring).
MAX_DT_OVER_TAU_MIN = _HH_DT_AT_1_PERCENT_MS / _HH_TAU_MIN_MS

_CONDUCTANCE_UNITS = {"s/cm2", "mho/cm2", "siemens/cm2"}


@lru_cache(maxsize=64)
def conductance_defaults(mod_file: Path) -> dict[str, float]:
    """PARAMETERs in S/cm² of a .mod file with their default values."""
    from gradgen.nmodl.parser import parse_file

    try:
        mech = parse_file(mod_file)
    except GradgenError:
        return {}
    return {p.name: float(p.value or 0.0) for p in mech.parameters
            if p.unit and p.unit.replace(" ", "").lower() in _CONDUCTANCE_UNITS}


def tau_min_ms(densities: Iterable[tuple[str, str, dict[str, float]]],
               conductances: dict[str, dict[str, float]], cm_uF_cm2: float,
               region_cm: dict[str, float] | None = None) -> float:
    """The smallest C_m / Σ ḡ over the regions; ``densities`` are (region, mechanism (a derived
    name counts as its base), values painted), ``conductances`` mechanism -> {ḡ name: default},
    ``region_cm`` the cm painted per region (µF/cm²; default ``cm_uF_cm2``). Regions are
    compared by their expression; what is painted on ``(all)`` counts on every region."""
    sums: dict[str, float] = {}
    for region, mech, values in densities:
        defaults = conductances.get(mech.partition("/")[0].strip(), {})
        total = sum(max(float(values.get(name, value)), 0.0) for name, value in defaults.items())
        sums[region] = sums.get(region, 0.0) + total
    everywhere = sums.pop('"all"', 0.0) + sums.pop("(all)", 0.0)
    region_cm = region_cm or {}
    taus = [region_cm.get(region, cm_uF_cm2) / (1000.0 * (g + everywhere))
            for region, g in sums.items() if g + everywhere > 0]
    if everywhere > 0:
        taus.append(cm_uF_cm2 / (1000.0 * everywhere))
    return min(taus, default=float("inf"))


def warn_if_coarse(dt: float, tau_ms: float) -> None:
    """A GradgenWarning when dt exceeds the calibrated multiple of the fastest time constant."""
    if dt > MAX_DT_OVER_TAU_MIN * tau_ms:
        warnings.warn(
            f"dt {dt:g} ms is coarse for this cell: its maximal conductances allow membrane time "
            f"constants down to {tau_ms:.2g} ms, and at dt > {MAX_DT_OVER_TAU_MIN:.3g}×that the "
            f"gradient error exceeds 1 % (measured on HH); use dt ≤ "
            f"{MAX_DT_OVER_TAU_MIN * tau_ms:.2g} ms for accurate gradients", GradgenWarning,
            stacklevel=3)


def warn_for_model(model, spec, dt: float, values: dict[str, float]) -> None:
    """:func:`warn_if_coarse` for a GradientModel's gradient run of ``spec`` (duck-typed to keep
    this module free of the runtime's imports)."""
    import arbor

    from gradgen.targets.arbor.decor import membrane_of

    conductances = {name: conductance_defaults(Path(model.directory) / entry.source_copy)
                    for name, entry in model.mechanisms.items()}
    densities = []
    for region, mech, painted in spec.decor.densities():
        tuned = {p.parameter: values[p.name] for p in model.params
                 if p.mechanism == mech and p.name in values}
        densities.append((region, mech, {**painted, **tuned}))
    membrane = membrane_of(spec, arbor.neuron_cable_properties())
    warn_if_coarse(dt, tau_min_ms(densities, conductances, membrane.cm, dict(membrane.cm_regions)))
