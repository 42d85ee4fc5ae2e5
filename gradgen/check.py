"""Finite-difference checks: gradient mechanisms against the original mechanisms.

A gradient is trusted only after comparison with central finite differences of the
*original* mechanism, compiled by modcc from the `.mod` file as given. The FD step is
checked for convergence by repeating it ten times smaller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.geometry_arbor import branch_geometries
from gradgen.runtime import CellSpec, Decor, GradientModel, mse_gradient
from gradgen.swc_check import check_swc


def cable_cell_spec(mechanisms: list[str], length: float = 500.0, radius: float = 0.5,
                    n_cv: int = 50, stimulus_nA: float = 0.1, t_on: float = 10.0,
                    t_off: float | None = None, labels: dict[str, str] | None = None) -> CellSpec:
    """A uniform cable with the mechanisms on all of it and a current step at x = 0.

    ``labels`` adds region labels (e.g. proximal/distal halves).
    """
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, radius), arbor.mpoint(length, 0, 0, radius), tag=1)
    return morphology_cell_spec(arbor.morphology(tree), arbor.label_dict(labels or {}),
                                arbor.cv_policy_fixed_per_branch(n_cv), mechanisms, stimulus_nA,
                                t_on, t_off)


#: The HH axon with its soma (shared benchmark cell): soma CV 20 µm × r 10 µm, 10 axon CVs
#: of 40 µm × r 0.5 µm; sites at the soma and the axon tip.
HH_AXON_SITES = ["(location 0 0)", "(location 0 1)"]


def hh_axon_spec(t_end: float, stimulus_nA: float = 0.2, mechanisms: list[str] | None = None,
                 labels: dict[str, str] | None = None) -> CellSpec:
    """The HH axon with its soma, hh everywhere, ``stimulus_nA`` into the soma from 10 ms to
    t_end − 40 ms (the benchmark protocol); ``labels`` adds region labels."""
    tree = arbor.segment_tree()
    soma = tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 10), arbor.mpoint(20, 0, 0, 10), tag=1)
    tree.append(soma, arbor.mpoint(20, 0, 0, 0.5), arbor.mpoint(420, 0, 0, 0.5), tag=2)
    heads = " ".join(f"(location 0 {(20 + 40 * k) / 420!r})" for k in range(10))
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    for mech in mechanisms or ["hh"]:
        decor.paint("(all)", arbor.density(mech))
    t_off = max(t_end - 40.0, 0.6 * t_end)
    decor.place("(location 0 0.023809523809523808)",  # soma centre
                arbor.i_clamp(10 * U.ms, (t_off - 10) * U.ms, stimulus_nA * U.nA))
    all_labels = {"soma": "(tag 1)", "axon": "(tag 2)", **(labels or {})}
    return CellSpec(arbor.morphology(tree), decor, arbor.label_dict(all_labels),
                    arbor.cv_policy_explicit(f"(join {heads} (locset-nil))"))


def morphology_cell_spec(morphology: arbor.morphology, labels: arbor.label_dict,
                         cv_policy: arbor.cv_policy | None, mechanisms: list[str],
                         stimulus_nA: float = 0.2, t_on: float = 10.0,
                         t_off: float | None = None) -> CellSpec:
    """Any morphology with the mechanisms on all of it and a current step at the root."""
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    for mech in mechanisms:
        decor.paint("(all)", arbor.density(mech))
    duration = (t_off if t_off is not None else 1e9) - t_on
    decor.place("(root)", arbor.i_clamp(t_on * U.ms, duration * U.ms, stimulus_nA * U.nA))
    return CellSpec(morphology, decor, labels, cv_policy)


def swc_cell_spec(path: str | Path, mechanisms: list[str], stimulus_nA: float = 0.2,
                  cv_policy: arbor.cv_policy | None = None) -> CellSpec:
    """An SWC reconstruction (Arbor's loader; regions soma/axon/dend/apic from the SWC tags)
    with the mechanisms everywhere and a current step into the root."""
    path = Path(path)
    if not path.is_file():
        raise GradgenError(f"{path}: no such morphology file", hint="give an .swc file")
    check_swc(path)
    try:
        loaded = arbor.load_swc_arbor(str(path))
    except RuntimeError as error:
        raise GradgenError(f"{path}: cannot read the SWC morphology: {error}",
                           hint="check the file against the SWC format") from None
    return morphology_cell_spec(loaded.morphology, loaded.labels, cv_policy, mechanisms,
                                stimulus_nA)


def near_far_sites(morphology: arbor.morphology) -> list[str]:
    """The root and the distal end of the branch farthest (path length) from it."""
    lengths = [g.length for g in branch_geometries(morphology)]
    distance: list[float] = []
    for b, length in enumerate(lengths):  # Arbor numbers parents before children
        parent = morphology.branch_parent(b)
        distance.append(length + (0.0 if parent == arbor.mnpos else distance[parent]))
    far = int(np.argmax(distance))
    return ["(location 0 0)", f"(location {far} 1)"]


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Relative L2 error; the reference's norm in the denominator."""
    scale = np.linalg.norm(reference)
    return float(np.linalg.norm(estimate - reference) / scale) if scale > 0 else float(np.linalg.norm(estimate))


def fd_step(value: float, rel: float) -> float:
    return rel * max(abs(value), 1e-3)


@dataclass
class FiniteDifference:
    """Central differences of the original model for one parameter at two step sizes."""

    dv: np.ndarray  # [site, t] at the smaller step
    convergence: float  # relative change between the two steps


def finite_difference(model: GradientModel, spec: CellSpec, sites: list[str], t_end: float,
                      dt: float, name: str, values: dict[str, float] | None = None,
                      rel_step: float = 1e-4) -> FiniteDifference:
    values = dict(values or {})
    value = values.get(name, model.defaults[name])
    estimates = []
    for rel in (rel_step, rel_step / 10):
        h = fd_step(value, rel)
        plus = model.simulate(spec, sites, t_end, dt, gradients=False, values={**values, name: value + h})
        minus = model.simulate(spec, sites, t_end, dt, gradients=False, values={**values, name: value - h})
        estimates.append((plus.v - minus.v) / (2 * h))
    return FiniteDifference(estimates[1], relative_error(estimates[0], estimates[1]))


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

    def as_dict(self, ok: bool) -> dict:
        return {"ok": ok, "dt": self.dt, "forward_max_abs_diff_mV": self.forward_max_abs_diff_mV,
                "loss_gradient_rel_error": self.loss_gradient_rel_error,
                "scaled_rel_error_per_site": self.scaled_rel_error_per_site,
                "geometry_max_abs_dV_mV": self.geometry_max_abs_dV_mV,
                "parameters": self.parameters}


def check_model(model: GradientModel, spec: CellSpec, sites: list[str], t_end: float, dt: float,
                values: dict[str, float] | None = None, progress=None) -> CheckReport:
    """Forward fidelity and dV/dθ (and an MSE loss gradient) against finite differences.

    The loss compares V at parameters ``values`` with a target made at the defaults ×1.1
    scaled down, i.e. the gradient a tuning step would see. Every θ not in ``values`` is set
    to its .mod default explicitly, so that a value painted in the user's decor cannot make
    the gradient run and the finite differences look at different points.
    """
    values = {p.name: (values or {}).get(p.name, model.defaults[p.name]) for p in model.params}
    grad = model.simulate(spec, sites, t_end, dt, gradients=True, values=values)
    plain = model.simulate(spec, sites, t_end, dt, gradients=False, values=values)
    report = CheckReport(dt, float(np.max(np.abs(grad.v - plain.v))))
    if model.carrier_geometry == "exact":
        report.geometry_max_abs_dV_mV = model.geometry(spec).max_abs_dV_mV
    target_values = {p.name: values.get(p.name, model.defaults[p.name]) / 1.1 for p in model.params}
    target = model.simulate(spec, sites, t_end, dt, gradients=False, values=target_values).v
    fd_loss, scales, fd_dv = [], [], []
    _, loss_grad = mse_gradient(grad, target)
    for k, ref in enumerate(model.params):
        fd = finite_difference(model, spec, sites, t_end, dt, ref.name, values)
        fd_dv.append(fd.dv)
        if progress:
            progress(ref.name)
        errors = [relative_error(grad.dv[s, k], fd.dv[s]) for s in range(len(sites))]
        report.parameters.append({"name": ref.name, "rel_error": max(errors),
                                  "rel_error_per_site": errors, "fd_convergence": fd.convergence})
        fd_loss.append(float(np.mean(2 * (plain.v - target) * fd.dv)))
        scales.append(abs(values.get(ref.name, model.defaults[ref.name])) or 1.0)
    scales = np.array(scales)
    fd_all = np.stack(fd_dv, axis=1)  # [site, k, t]
    report.scaled_rel_error_per_site = [
        relative_error(grad.dv[s] * scales[:, None], fd_all[s] * scales[:, None])
        for s in range(len(sites))]
    report.loss_gradient_rel_error = relative_error(loss_grad * scales, np.array(fd_loss) * scales)
    return report


__all__ = ["cable_cell_spec", "hh_axon_spec", "HH_AXON_SITES", "morphology_cell_spec", "swc_cell_spec", "near_far_sites",
           "check_model", "finite_difference", "relative_error"]
