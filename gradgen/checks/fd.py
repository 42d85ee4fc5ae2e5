"""Finite-difference checks: gradient mechanisms against the original mechanisms.

A gradient is trusted only after comparison with central finite differences of the
*original* mechanism, compiled by modcc from the `.mod` file as given. The FD step is
checked for convergence by repeating it ten times smaller (and larger, where rounding dominates,
and smaller still, where V jumps in θ).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradgen.checks.excluded import equality_switches, invisible, switch_times
from gradgen.errors import GradgenError, NonFiniteSimulation
from gradgen.losses import mse_gradient
from gradgen.targets.arbor.decor import CellSpec
from gradgen.targets.arbor.model import GradientModel


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Relative L2 error; the reference's norm in the denominator."""
    scale = np.linalg.norm(reference)
    return float(np.linalg.norm(estimate - reference) / scale) if scale > 0 else float(np.linalg.norm(estimate))


#: The step of a θ that is 0, in its own unit, at ``rel_step`` 1: there is no scale to be
#: relative to (1e-7 at the default rel_step, as the steps of θ = 1e-3 are).
ZERO_SCALE = 1e-3


def fd_step(value: float, rel: float) -> float:
    """The FD step: relative to a nonzero θ, so that it never reaches 0 and changes sign
    (102288 IKCa's k2 = 1.3e-7 mM stepped by an absolute 1e-7 and its retries went negative),
    and ``rel · ZERO_SCALE`` for θ = 0."""
    return rel * (abs(value) if value != 0 else ZERO_SCALE)


@dataclass
class FiniteDifference:
    """Finite differences of the original model for one parameter at two step sizes."""

    dv: np.ndarray  # [site, t] at the smaller step
    convergence: float  # relative change between the two steps
    #: why the larger steps stopped early (a step at which the original blew up), or None
    note: str | None = None
    #: (step, max |V(θ+step) − V(θ−step)|) of every step tried, smallest first: whether the
    #: differences grow with the step (a derivative) or stay flat (rounding, see :func:`invisible`)
    spans: list[tuple[float, float]] = field(default_factory=list)


#: Two FD steps that disagree by more than this are dominated by rounding (a parameter
#: whose effect on V is tiny, or whose value is 0 so the step is 1e-7 absolute): larger
#: steps are tried, up to LARGER_STEPS decades, and the best-agreeing pair is kept.
RETRY_CONVERGENCE = 1e-3
LARGER_STEPS = 3
#: θ = 0 has no scale of its own: its steps go on up to 0.1 of its unit (rel_step 1e-4), e.g.
#: 183300 kamt's voltage shift sh_tauH = 0 mV, whose differences were rounding up to 1e-4 mV
#: (3.7e-2 between steps); a step at which the original blows up still ends them.
ZERO_LARGER_STEPS = 6
#: Where the larger steps up to 10 % of θ do not agree (a θ that moves V by ~1e-9 mV, whose
#: differences carry a rounding floor of ~1e-12 mV), the 10 % estimate is compared with one
#: at this relative step, keeping θ's sign: 243448 trpm8's p_ca is 4 % off the gradient at
#: 1 %, 0.2–0.3 % at 10 %, 0.1 % at 30 % (145836 NMDA10_1's Rr2: 3.5 %, 0.5 %, 0.1 %).
WIDEST_STEP = 0.3
#: Where no larger step converges either, smaller ones are tried (h/100, h/1000): a rate that
#: jumps at a voltage (17664 Kdr's tauh, 1200 → 10 ms at v = −25 mV) makes V jump in θ
#: wherever a step moves a sample of V across it, and the larger the step, the more samples
#: cross. Kdr's ek: FD against the gradient 3.2 % at relative step 1e-2, 1.1e-2 / 1.1e-1 at
#: 1e-4 (the two sites), 5e-4 at 1e-5, 5e-6 at 1e-6, at the rounding floor from 1e-7.
SMALLER_STEPS = 2


def finite_difference(model: GradientModel, spec: CellSpec, sites: list[str], t_end: float,
                      dt: float, name: str, values: dict[str, float] | None = None,
                      rel_step: float = 1e-4) -> FiniteDifference:
    """dV/dθ of the original by differences that keep θ's sign: central for θ ≠ 0 (a relative
    step of at most 10 % even after the retries, shown converged by one of 30 % at most),
    one-sided second-order differences on the
    positive side for θ = 0 (a permeability of 0 stepped to −1e-4 cm/s blew 121600's GHK leaks
    up). Where the first two steps disagree, larger steps are tried, then smaller ones
    (:data:`SMALLER_STEPS`), and the best-agreeing pair is kept. A larger step at which the
    original blows up ends the larger retries (recorded in ``note``); one of the first two
    steps blowing up is a GradgenError naming θ and the step."""
    values = dict(values or {})
    value = values.get(name, model.defaults[name])
    # Arbor holds an event's weight in single precision: a synapse's weight θ (default None)
    # moves by what float32 makes of value ± h (h = 1e-7 of 0.01 was off by 6e-3 of itself)
    rounded = (lambda x: float(np.float32(x))) if model.defaults[name] is None else (lambda x: x)

    def v_at(x: float) -> np.ndarray:
        return model.simulate(spec, sites, t_end, dt, gradients=False, values={**values, name: x}).v

    v0: list[np.ndarray] = []  # V at θ itself, run once, for the one-sided differences

    spans: list[tuple[float, float]] = []

    def difference(h: float) -> np.ndarray:
        if value != 0:
            up, down = rounded(value + h), rounded(value - h)
            plus, minus = v_at(up), v_at(down)
            spans.append((h, float(np.max(np.abs(plus - minus)))))
            return (plus - minus) / (up - down)
        if not v0:
            v0.append(v_at(value))
        # second order, (-3 f(0) + 4 f(h) - f(2h)) / 2h written with differences so that a V
        # that θ does not move gives exactly 0 (-3a + 4a - a is not 0 in floating point)
        one = rounded(h)  # 2·one is exact in float32 too
        near, far = v_at(one) - v0[0], v_at(2 * one) - v0[0]
        spans.append((h, float(max(np.max(np.abs(near)), np.max(np.abs(far))))))
        return (4 * near - far) / (2 * one)

    h = fd_step(value, rel_step)
    try:
        estimates = [difference(h), difference(h / 10)]  # [larger step, smaller step]
    except NonFiniteSimulation as err:
        raise GradgenError(f"finite differences of {name} = {value:g} with step {h:g}: the original "
                           f"mechanisms blew up: {err.what} is not finite from t = {err.t:g} ms at {err.site}",
                           hint="check at a value of θ where small changes keep the model stable") from None
    best = FiniteDifference(estimates[1], relative_error(estimates[0], estimates[1]))
    first_smaller = estimates[1]
    for j in range(1, (LARGER_STEPS if value != 0 else ZERO_LARGER_STEPS) + 1):
        if best.convergence <= RETRY_CONVERGENCE:
            break
        try:
            larger = difference(h * 10**j)
        except NonFiniteSimulation as err:
            best.note = (f"larger FD steps of {name} stopped at {h * 10**j:g}: the original blew up "
                         f"({err.what} not finite from t = {err.t:g} ms)")
            break
        pair = FiniteDifference(estimates[0], relative_error(larger, estimates[0]), best.note)
        if pair.convergence < best.convergence:
            best = pair
        estimates = [larger, estimates[0]]
    widest = WIDEST_STEP * abs(value)
    if best.convergence > RETRY_CONVERGENCE and value != 0 and best.note is None \
            and h * 10**LARGER_STEPS < widest:
        try:  # the 10 % estimate, shown converged by a step of 30 % (V linear in a θ of tiny effect)
            pair = FiniteDifference(estimates[0], relative_error(difference(widest), estimates[0]))
            if pair.convergence < best.convergence:
                best = pair
        except NonFiniteSimulation:
            pass  # (the widest step blowing up: keep what there is)
    previous = first_smaller
    for j in range(2, SMALLER_STEPS + 2):  # h/100, h/1000: steps that cross no jump of V
        if best.convergence <= RETRY_CONVERGENCE:
            break
        try:
            smaller = difference(h / 10**j)
        except NonFiniteSimulation:
            break  # (a smaller step blowing up where the larger ones did not: keep what there is)
        pair = FiniteDifference(smaller, relative_error(previous, smaller), best.note)
        if pair.convergence < best.convergence:
            best = pair
        previous = smaller
    best.spans = sorted(spans)
    return best


@dataclass
class CheckReport:
    dt: float
    forward_max_abs_diff_mV: float
    parameters: list[dict] = field(default_factory=list)
    loss_gradient_rel_error: float = float("nan")
    #: per site, relative error of the θ-scaled vector (θ_k·dV/dθ_k over k and t): a near-zero
    #: sensitivity cannot dominate it the way it dominates its own relative error
    scaled_rel_error_per_site: list[float] = field(default_factory=list)
    #: the gradient cell's geometry transform: max |V_transformed − V_original| at start-up
    geometry_max_abs_dV_mV: float = float("nan")

    @property
    def moves_v(self) -> bool:
        """Whether any θ changes V at all: a check where none does compares zeros with zeros."""
        return any(p["moves_v"] for p in self.parameters)

    def as_dict(self, ok: bool) -> dict:
        return {"ok": ok, "dt": self.dt, "forward_max_abs_diff_mV": self.forward_max_abs_diff_mV,
                "loss_gradient_rel_error": self.loss_gradient_rel_error,
                "scaled_rel_error_per_site": self.scaled_rel_error_per_site,
                "geometry_max_abs_dV_mV": self.geometry_max_abs_dV_mV,
                "parameters": self.parameters}


def switch_times_of(model: GradientModel, values: dict[str, float], dt: float, t_end: float) -> dict[str, str]:
    """The θ of ``model`` that are switch times of a run at θ = ``values``
    (:func:`gradgen.checks.excluded.switch_times`)."""
    from gradgen.nmodl.lower import lower_file

    found = {}
    for name in {ref.mechanism for ref in model.params}:
        own = {ref.parameter: values[ref.name] for ref in model.params
               if ref.mechanism == name and ref.region is None and values.get(ref.name) is not None}
        low = lower_file(model.mechanisms[name].source)
        found[name] = {**equality_switches(low), **switch_times(low, own, dt, t_end)}
    return {ref.name: found[ref.mechanism][ref.parameter] for ref in model.params
            if ref.parameter in found[ref.mechanism]}


def _refuse_a_model_that_is_not_finite(model: GradientModel, spec: CellSpec, sites: list[str], t_end: float,
                                       dt: float, values: dict[str, float]) -> None:
    """After the gradient run blew up: if the plain run blows up too, the model itself is not
    finite there (168858 cad's ``phi``, ``beta`` and ``ceiling`` default to 0, set from hoc:
    cnexp's −b/a is 0/0, in NEURON as in Arbor): say that, not "the gradient blew up"."""
    try:
        model.simulate(spec, sites, t_end, dt, gradients=False, values=values)
    except NonFiniteSimulation as err:
        raise GradgenError(f"the model itself is not finite at these parameter values: {err.what} from "
                           f"t = {err.t:g} ms at {err.site}",
                           hint="parameters a model sets from hoc often default to 0 in the .mod file; "
                                "check at working values with --set MECH.PARAM=VALUE") from None


def compared_parameters(report: "CheckReport") -> list[dict]:
    """The parameters of a report that were FD-compared (not excluded with a reason)."""
    return [p for p in report.parameters if not p.get("excluded")]


def check_model(model: GradientModel, spec: CellSpec, sites: list[str], t_end: float, dt: float,
                values: dict[str, float] | None = None, progress=None) -> CheckReport:
    """Forward fidelity and dV/dθ (and an MSE loss gradient) against finite differences.

    The loss compares V at parameters ``values`` with a target made at the defaults ×1.1
    scaled down (switches kept), i.e. the gradient a tuning step would see. Every θ not in ``values`` is set
    to its .mod default explicitly, so that a value painted in the user's decor cannot make
    the gradient run and the finite differences look at different points. Switch times and
    θ that V does not visibly depend on are reported with ``excluded`` (their reason) and
    left out of the comparison (:mod:`gradgen.checks.excluded`).
    """
    values = {p.name: (values or {}).get(p.name, model.defaults[p.name]) for p in model.params}
    try:
        grad = model.simulate(spec, sites, t_end, dt, gradients=True, values=values)
    except NonFiniteSimulation:
        _refuse_a_model_that_is_not_finite(model, spec, sites, t_end, dt, values)
        raise
    plain = model.simulate(spec, sites, t_end, dt, gradients=False, values=values)
    report = CheckReport(dt, float(np.max(np.abs(grad.v - plain.v))))
    if model.carrier_geometry == "exact" and model.carrier == "ion":
        report.geometry_max_abs_dV_mV = model.geometry(spec).max_abs_dV_mV
    switches = switch_times_of(model, values, dt, t_end)
    # a switch keeps its value in the target: a flag divided by 1.1 selects nothing
    target_values = {p.name: values[p.name] / (1.0 if p.name in switches else 1.1) for p in model.params}
    target = model.simulate(spec, sites, t_end, dt, gradients=False, values=target_values).v
    fd_loss, scales, fd_dv, compared = [], [], [], []
    _, loss_grad = mse_gradient(grad, target)
    for k, ref in enumerate(model.params):
        if ref.name in switches:  # not FD-compared: V jumps in it
            report.parameters.append({"name": ref.name, "rel_error": float("nan"), "rel_error_per_site": [],
                                      "fd_convergence": float("nan"), "moves_v": False, "fd_note": None,
                                      "excluded": switches[ref.name]})
            continue
        fd = finite_difference(model, spec, sites, t_end, dt, ref.name, values)
        if progress:
            progress(ref.name)
        errors = [relative_error(grad.dv[s, k], fd.dv[s]) for s in range(len(sites))]
        excluded = invisible(fd.spans, fd.convergence <= RETRY_CONVERGENCE, float(np.max(np.abs(grad.dv[:, k]))))
        report.parameters.append({"name": ref.name, "rel_error": max(errors),
                                  "rel_error_per_site": errors, "fd_convergence": fd.convergence,
                                  "moves_v": bool(np.any(fd.dv != 0)) and excluded is None,
                                  "fd_note": fd.note, "excluded": excluded})
        if excluded is not None:
            continue
        compared.append(k)
        fd_dv.append(fd.dv)
        fd_loss.append(float(np.mean(2 * (plain.v - target) * fd.dv)))
        scales.append(abs(values.get(ref.name, model.defaults[ref.name])) or 1.0)
    if not compared:
        return report
    scales = np.array(scales)
    fd_all = np.stack(fd_dv, axis=1)  # [site, k, t]
    report.scaled_rel_error_per_site = [
        relative_error(grad.dv[s, compared] * scales[:, None], fd_all[s] * scales[:, None])
        for s in range(len(sites))]
    report.loss_gradient_rel_error = relative_error(loss_grad[compared] * scales, np.array(fd_loss) * scales)
    return report


__all__ = ["check_model", "compared_parameters", "finite_difference", "relative_error", "switch_times_of"]
