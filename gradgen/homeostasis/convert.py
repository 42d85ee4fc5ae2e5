"""Homeostatic conversion: gradient mechanisms whose parameters learn while Arbor simulates.

Each learned θ_k is one value shared by the whole cell (exact, and what "the cell's gNa"
means). It lives as the diffusive concentration of an extra ion (its parameter ion) with a very large
diffusivity: Arbor's implicit diffusion solve then averages it over the cell every step, so
every mechanism on every CV reads the same, current θ_k. The hub adds the learning step

    dθ_k/dt = −α · scale_k² · ∂e/∂θ_k,   ∂e/∂θ_k = (V − V*)·u_k   or   (f − f*)·φ_k

on the error site's CV only, weighted by (cell volume / CV volume) so that the average moves
by exactly one step; the result is clipped to [lo_k, hi_k]. Sensitivities forget: u_k, every
σ and φ_k are multiplied by exp(−λ·dt) every step (du/dt, dσ/dt get −λu, −λσ).

The contributors are the ordinary ones (:func:`gradgen.sensitivity.derive.derive_contributor`) with each
bound parameter p replaced by p + w_k·(θ_k − p) (θ_k read from its parameter ion) and the carried
σ scaled by the forgetting factor; with α = 0 and λ = 0 they are the ordinary gradient system.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import sympy

from gradgen.convert import check_parameters
from gradgen.errors import GradgenError
from gradgen.manifest import (
    Manifest,
    MechanismEntry,
    mechanism_entry,
    parameter_entries,
)
from gradgen.nmodl.ir import IonUse, Variable
from gradgen.nmodl.lower import lower_file
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.outputs import write_outputs
from gradgen.params import ParamRef
from gradgen.protocol import (
    FORGET,
    HUB_NAME,
    LAMBDA,
    MANIFEST,
    diffusive,
    gradient_name,
    parameter_ion,
    sens_pre,
    weight,
)
from gradgen.sensitivity.derive import ContributorSystem, derive_contributor
from gradgen.sensitivity.straight_line import Assignment, Code
from gradgen.targets.arbor.emit import emit_contributor, template
from gradgen.version import __version__

NOISE = "noise"  # the built-in noisy input mechanism (its ``gain`` may be a θ)
SPIKE_COUNT_MV = -10.0  # the hub counts upward crossings of this voltage (the measured rate)


@dataclass(frozen=True)
class VoltageTarget:
    """e = ½(V − V*)² at the error site (mV)."""

    v_target: float


@dataclass(frozen=True)
class RateTarget:
    """e = ½(f − f*)² with f a smoothed spike rate (Hz) at the error site.

    Value: each upward move of S(V) = 1/(1 + exp(−(V − v_threshold)/v_width)) adds
    1000/tau_rate Hz per unit of S and f decays with ``tau_rate`` (ms), so one spike adds
    exactly 1000/tau_rate Hz: an exponentially smoothed spike count.
    Gradient: a spike count is piecewise constant in θ (its pathwise derivative sees only
    spike-time shifts, and with the wrong sign: an earlier spike has decayed more), so
    φ_k = ∂f̃/∂θ_k of the surrogate f̃ = lowpass_tau_rate(1000·S̃(V)/surrogate_duration),
    S̃ a wide sigmoid around the spike threshold, which also sees how close V comes to
    firing. φ_k is exact for f̃, whose value is not used.
    """

    rate_target_hz: float
    tau_rate: float = 2_000.0
    v_threshold: float = -20.0
    v_width: float = 2.0
    surrogate_threshold: float = -50.0
    surrogate_width: float = 5.0
    surrogate_duration: float = 2.0


@dataclass(frozen=True)
class HomeostaticConfig:
    """Learning rate α, forgetting λ (/ms), the error, and per-θ start, scale and bounds.

    ``scale`` makes α comparable across parameters (default: the start value, i.e. α acts
    on θ/θ_start); ``bounds`` default to [0, ∞) for conductance-like values; ``max_rate``
    (/ms) caps |d(θ/scale)/dt|, which keeps a burst of large sensitivities (at the onset or
    end of firing) from throwing θ across its range in one step.
    """

    alpha: float
    lam: float
    target: VoltageTarget | RateTarget
    max_rate: float = math.inf
    start: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    noise: dict[str, float] | None = None  # add the built-in noise input with these defaults

    def as_dict(self) -> dict:
        return {"alpha": self.alpha, "lambda": self.lam,
                "max_rate": None if math.isinf(self.max_rate) else self.max_rate,
                "target": {"kind": "rate" if isinstance(self.target, RateTarget) else "voltage",
                           **dataclasses.asdict(self.target)},
                "start": self.start, "scale": self.scale,
                "bounds": {k: list(v) for k, v in self.bounds.items()}, "noise": self.noise}


NOISE_DEFAULTS = {"gain": 1.0, "mu": 0.0, "sigma": 0.0, "tau": 5.0}
_NOISE_PARAMETERS = list(NOISE_DEFAULTS)


def _homeostatic_contributor(low: LoweredMechanism, params: list[ParamRef]) -> ContributorSystem:
    """The ordinary contributor with bound parameters read from their parameter ions and σ forgetting."""
    system = derive_contributor(low, params)
    pos = low.mechanism.pos
    by_param: dict[str, list[int]] = {}
    for k, name in system.owned.items():
        by_param.setdefault(name, []).append(k)
    subs = {}
    for name, ks in by_param.items():
        p = sympy.Symbol(name)
        subs[p] = p + sympy.Add(*[sympy.Symbol(weight(k)) * (sympy.Symbol(diffusive(parameter_ion(k))) - p)
                                  for k in ks])

    def substituted(code: Code) -> Code:
        return Code([Assignment(a.target, a.expr.xreplace(subs)) for a in code.statements], list(code.locals))

    keep = sympy.Symbol(FORGET)
    pre = {sens_pre(s, k) for s in low.states for k in range(len(params))}
    phase_b = substituted(system.phase_b)
    phase_b.statements = [Assignment(a.target, keep * a.expr if a.target in pre else a.expr)
                          for a in phase_b.statements]
    if pre:
        phase_b.statements.insert(0, Assignment(FORGET, sympy.exp(-sympy.Symbol(LAMBDA) * sympy.Symbol("dt"))))
        phase_b.locals.insert(0, FORGET)
    ions = [IonUse(parameter_ion(k), [diffusive(parameter_ion(k))], [], pos) for k in sorted(system.owned)]
    mechanism = dataclasses.replace(low.mechanism, ions=list(low.mechanism.ions) + ions)
    lowered = dataclasses.replace(low, mechanism=mechanism,
                                  parameters=list(low.parameters) + [Variable(LAMBDA, pos, "/ms", None)])
    return dataclasses.replace(
        system, lowered=lowered, initial=substituted(system.initial), phase_a=substituted(system.phase_a),
        currents=[Assignment(a.target, a.expr.xreplace(subs)) for a in system.currents], phase_b=phase_b)


def _set_default(low: LoweredMechanism, name: str, value: float) -> LoweredMechanism:
    params = [dataclasses.replace(p, value=value) if p.name == name else p for p in low.parameters]
    return dataclasses.replace(low, parameters=params)


def _number(x: float) -> str:
    if math.isinf(x):
        return "1e300" if x > 0 else "-1e300"
    return repr(float(x))


def emit_homeostatic_hub(params: Sequence[ParamRef], config: HomeostaticConfig,
                         start: Sequence[float]) -> str:
    """NMODL text of the homeostatic hub for ``params`` (start values θ_k(0) in ``start``)."""
    target = config.target
    scale = [config.scale.get(p.name, abs(s) or 1.0) for p, s in zip(params, start)]
    bounds = [config.bounds.get(p.name, (0.0, math.inf)) for p in params]
    for p, s, (lo, hi) in zip(params, start, bounds):
        if not lo <= s <= hi:
            raise GradgenError(f"start value {s!r} of '{p.name}' lies outside its bounds [{lo}, {hi}]")
    extra = {}
    if isinstance(target, RateTarget):
        extra = dict(mode="rate", rate_target=_number(target.rate_target_hz), tau_rate=_number(target.tau_rate),
                     v_threshold=_number(target.v_threshold), v_width=_number(target.v_width),
                     surrogate_threshold=_number(target.surrogate_threshold),
                     surrogate_width=_number(target.surrogate_width),
                     surrogate_duration=_number(target.surrogate_duration))
    else:
        extra = dict(mode="voltage", v_target=_number(target.v_target))
    return template("homeostatic_hub.mod.j2").render(
        name=HUB_NAME, version=__version__, params=list(params), ks=list(range(len(params))),
        v_count=_number(SPIKE_COUNT_MV), alpha=_number(config.alpha),
        max_rate=_number(config.max_rate), lam=_number(config.lam),
        start=[_number(s) for s in start], scale=[_number(s) for s in scale],
        lo=[_number(b[0]) for b in bounds], hi=[_number(b[1]) for b in bounds], **extra)


def emit_noise(params: Sequence[ParamRef], defaults: dict[str, float], gradient: bool) -> str:
    """NMODL text of the noisy input (original, or its homeostatic gradient version)."""
    owned = [k for k, p in enumerate(params) if p.mechanism == NOISE] if gradient else []
    return template("homeostatic_noise.mod.j2").render(
        name=gradient_name(NOISE) if gradient else NOISE, original=NOISE, version=__version__,
        gradient=gradient, homeostatic=gradient, owned=owned,
        **{n: _number(defaults[n]) for n in _NOISE_PARAMETERS})


def convert_homeostatic(mod_files: Sequence[Path | str], out_dir: Path | str, params: Sequence[ParamRef],
                        config: HomeostaticConfig) -> Manifest:
    """Like :func:`gradgen.convert.convert`, for a homeostatic model; returns the manifest.

    The output loads with :meth:`gradgen.GradientModel.load`; run it with
    :func:`gradgen.homeostasis.run.homeostatic_simulation`.
    """
    params = list(params)
    if not params:
        raise GradgenError("no parameters to learn", hint="use --params mech.param,...")
    if config.alpha < 0 or config.lam < 0 or not config.max_rate > 0:
        raise GradgenError("alpha and lambda must be >= 0", hint="e.g. --alpha 1e-6 --forget 1e-4 (and max_rate > 0)")
    mechanisms = [lower_file(f) for f in mod_files]
    names = [m.name for m in mechanisms]
    if NOISE in names:
        raise GradgenError(f"an input defines mechanism '{NOISE}', the name of the built-in noisy input",
                           hint="rename the mechanism")
    unknown_noise = set(config.noise or {}) - set(NOISE_DEFAULTS)
    if unknown_noise:
        raise GradgenError(f"unknown noise setting(s) {', '.join(sorted(unknown_noise))}",
                           hint="settings: " + ", ".join(NOISE_DEFAULTS))
    noise_defaults = None if config.noise is None else {**NOISE_DEFAULTS, **config.noise}
    learned_noise = [p for p in params if p.mechanism == NOISE]
    if learned_noise and noise_defaults is None:
        raise GradgenError(f"parameter '{learned_noise[0].name}' needs the built-in noisy input",
                           hint="add --noise (Python: HomeostaticConfig(noise={...}))")
    for p in learned_noise:
        if p.parameter != "gain":
            raise GradgenError(f"'{p.name}': only noise.gain can be learned", hint="use noise.gain")
    check_parameters([p for p in params if p.mechanism != NOISE], mechanisms)
    unknown = (set(config.start) | set(config.scale) | set(config.bounds)) - {p.name for p in params}
    if unknown:
        raise GradgenError(f"start/scale/bounds given for unknown parameter(s) {', '.join(sorted(unknown))}",
                           hint="known: " + ", ".join(p.name for p in params))

    def default(ref: ParamRef) -> float:
        if ref.mechanism == NOISE:
            return float(noise_defaults["gain"])
        mech = next(m for m in mechanisms if m.name == ref.mechanism)
        return float(mech.mechanism.parameter(ref.parameter).value or 0.0)

    start = [config.start.get(p.name, default(p)) for p in params]
    files: dict[str, str] = {f"{HUB_NAME}.mod": emit_homeostatic_hub(params, config, start)}
    entries = []
    for m in mechanisms:
        system = _homeostatic_contributor(m, params)
        system = dataclasses.replace(system, lowered=_set_default(system.lowered, LAMBDA, config.lam))
        files[f"{gradient_name(m.name)}.mod"] = emit_contributor(system)
        files[f"original/{m.name}.mod"] = m.mechanism.text
        entries.append(mechanism_entry(m, len(params)))
    if noise_defaults is not None:
        files[f"{gradient_name(NOISE)}.mod"] = emit_noise(params, noise_defaults, gradient=True)
        files[f"original/{NOISE}.mod"] = emit_noise(params, noise_defaults, gradient=False)
        entries.append(MechanismEntry(original=NOISE, gradient=gradient_name(NOISE), kind="density",
                                      source="built-in", source_copy=f"original/{NOISE}.mod", states=["x"],
                                      parameters=_NOISE_PARAMETERS, sensitivities={}))
    manifest = Manifest(hub=HUB_NAME, scheme="corrected",
                        parameters=parameter_entries(params, start, homeostatic=True),
                        mechanisms=entries, homeostatic=config.as_dict())
    files[MANIFEST] = manifest.to_json()
    write_outputs(out_dir, files, inputs=[m.mechanism.source for m in mechanisms])
    return manifest
