"""Finite-difference check of a NEURON model: gradient mechanisms against the originals.

The cell is built once with the ORIGINAL mechanisms (:func:`gradgen.protocol.original_name`, compiled by
``nrnivmodl`` from the files as given); finite differences, the loss target and the plain
run use it. Then :meth:`NeuronModel.swap` replaces them in place by the gradient versions
and one run gives V and every u_k. The FD step is taken at two sizes (its convergence is
reported), central differences.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gradgen.errors import GradgenError
from gradgen.params import ParamRef, parse_param_list
from gradgen.protocol import original_name
from gradgen.targets.neuron.model import NeuronModel, set_value, simulate
from gradgen.targets.neuron.point_processes import points_on, set_point_value


@dataclass
class NeuronCell:
    """A cell built in NEURON with the original mechanisms: its sections, the segments to
    record, regions for θ@region, and objects (stimuli) that must stay alive."""

    sections: list[Any]
    sites: list[Any]
    regions: dict[str, list[Any]] = field(default_factory=dict)
    keep: list[Any] = field(default_factory=list)
    #: ions whose reversal potential is held at :data:`FIXED_REVERSAL_MV` (a written
    #: concentration makes NEURON recompute it by Nernst each step, a path gradgen does not carry)
    fixed_reversal: list[str] = field(default_factory=list)


#: the reversal potential of a coupled ion in the check (mV)
FIXED_REVERSAL_MV = 120.0


def hold_reversal(h: Any, cell: NeuronCell) -> None:
    """Reversal potentials of ``cell.fixed_reversal`` held constant (NEURON's ion_style:
    concentrations a state, e an assigned value, neither initialised nor advanced by Nernst).
    Inserting a mechanism resets the style, so this runs before every run."""
    for ion in cell.fixed_reversal:
        for sec in cell.sections:
            if sec.has_membrane(f"{ion}_ion"):
                h.ion_style(f"{ion}_ion", 3, 2, 0, 0, 1, sec=sec)
                for seg in sec:
                    setattr(seg, f"e{ion}", FIXED_REVERSAL_MV)


@dataclass
class NeuronReport:
    parameters: list[str]
    dt: float
    forward_max_abs_diff_mV: float
    dv_rel_error: list[list[float]]  # [k][site]
    fd_convergence: list[float]  # [k]: relative change of the FD between its two steps
    loss_gradient_rel_error: float
    loss_gradient: list[float]
    loss_gradient_fd: list[float]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Relative L2 error; the reference's norm in the denominator."""
    scale = np.linalg.norm(reference)
    return float(np.linalg.norm(estimate - reference) / scale) if scale > 0 else float(np.linalg.norm(estimate))


def set_values(model: NeuronModel, cell: NeuronCell, values: Mapping[str, float], gradient: bool) -> None:
    """Set every θ's value on the mechanism it binds to (its region's sections only)."""
    by_original = model.manifest.by_original()
    for p in model.manifest.parameters:
        if p.name not in values:
            continue
        name = by_original[p.mechanism].gradient if gradient else original_name(p.mechanism)
        where = cell.regions[p.region] if p.region else cell.sections
        if by_original[p.mechanism].kind == "point":
            for point in points_on(where, name):
                set_point_value(model.h, point, p.parameter, values[p.name])
            continue
        for sec in where:
            if sec.has_membrane(name):
                for seg in sec:
                    set_value(model.h, seg, name, p.parameter, values[p.name])


def check_cell(model: NeuronModel, build: Callable[[Any], NeuronCell], t_end: float, dt: float,
               v_init: float = -65.0, rel_step: float = 1e-4, values: Mapping[str, float] | None = None
               ) -> NeuronReport:
    """dV/dθ at the cell's sites and the gradient of L = mean((V − V*)²) against central
    finite differences of the original model; V* is the model at θ/1.1. θ's values are
    ``values``, else the .mod defaults (set explicitly, so both versions run at the same
    point; a NET_RECEIVE weight has no default: give it)."""
    h = model.h
    cell = build(h)
    given = dict(values or {})
    missing = [p.name for p in model.manifest.parameters if p.name not in given and p.default is None]
    if missing:
        raise GradgenError(f"no value for {', '.join(missing)}", hint="an event weight has no default: give it")
    values = {p.name: float(given.get(p.name, p.default)) for p in model.manifest.parameters}

    def run(vals: Mapping[str, float]) -> np.ndarray:
        set_values(model, cell, vals, gradient=False)
        hold_reversal(h, cell)
        return simulate(h, cell.sites, t_end, dt, v_init).v

    plain = run(values)
    target = run({k: v / 1.1 for k, v in values.items()})
    fds, convergence = [], []
    for name, value in values.items():
        estimates = []
        for rel in (rel_step, rel_step / 10):
            step = rel * max(abs(value), 1e-3)
            estimates.append((run({**values, name: value + step}) - run({**values, name: value - step})) / (2 * step))
        fds.append(estimates[1])
        convergence.append(relative_error(estimates[0], estimates[1]))
    set_values(model, cell, values, gradient=False)
    model.swap(cell.sections, cell.regions)
    hold_reversal(h, cell)
    grad = model.run(cell.sites, t_end, dt, v_init)
    residual = plain - target
    loss = 2.0 * np.einsum("st,skt->k", residual, grad.u) / residual.size
    loss_fd = np.array([2.0 * np.mean(residual * fd) for fd in fds])
    scales = np.abs(np.array(list(values.values())))
    scales[scales == 0] = 1.0
    return NeuronReport(
        parameters=list(values), dt=dt, forward_max_abs_diff_mV=float(np.max(np.abs(grad.v - plain))),
        dv_rel_error=[[relative_error(grad.u[s, k], fds[k][s]) for s in range(len(cell.sites))]
                      for k in range(len(values))],
        fd_convergence=convergence,
        loss_gradient_rel_error=relative_error(loss * scales, loss_fd * scales),
        loss_gradient=[float(x) for x in loss], loss_gradient_fd=[float(x) for x in loss_fd])


def cable(h: Any, mechanisms: Sequence[str], length: float = 500.0, diam: tuple[float, float] = (1.0, 1.0),
          nseg: int = 51, stimulus_nA: float = 0.1, delay: float = 1.0, duration: float = 1e9,
          sites: Sequence[float] = (0.01, 0.99), cm: float = 1.0, Ra: float = 100.0) -> NeuronCell:
    """One unbranched cable (linear taper from diam[0] to diam[1] µm; cm and Ra as in the Arbor
    checks) with the original mechanisms, a step current at x = 0 and recording sites at
    ``sites`` (x along it)."""
    sec = h.Section(name="cable")
    sec.L, sec.nseg, sec.cm, sec.Ra = length, nseg, cm, Ra
    h.pt3dclear(sec=sec)
    h.pt3dadd(0, 0, 0, diam[0], sec=sec)
    h.pt3dadd(length, 0, 0, diam[1], sec=sec)
    for m in mechanisms:
        sec.insert(original_name(m))
    stim = h.IClamp(sec(0.0))
    stim.delay, stim.dur, stim.amp = delay, duration, stimulus_nA
    return NeuronCell([sec], [sec(x) for x in sites], keep=[stim])


#: the weight (µS) of every event in the check's spike trains, and of a ``weight`` θ
SYNAPSE_WEIGHT_US = 0.005
#: two regular NetStim trains (start, interval, number; ms) that overlap irregularly
SPIKE_TRAINS = ((2.0, 6.0, 8), (5.3, 9.7, 5))


def drive_synapses(h: Any, cell: NeuronCell, mechanisms: Sequence[str], x: float = 0.3) -> None:
    """Place each point process (original) at ``x`` on the cell's first section, driven by
    :data:`SPIKE_TRAINS` through NetCons of weight :data:`SYNAPSE_WEIGHT_US`."""
    seg = cell.sections[0](x)
    for m in mechanisms:
        synapse = getattr(h, original_name(m))(seg)
        cell.keep.append(synapse)
        for start, interval, number in SPIKE_TRAINS:
            stim = h.NetStim()
            stim.start, stim.interval, stim.number, stim.noise = start, interval, number, 0
            nc = h.NetCon(stim, synapse)
            nc.delay, nc.weight[0] = 1.0, SYNAPSE_WEIGHT_US
            cell.keep += [stim, nc]


def swc_cell(h: Any, path: str, mechanisms: Sequence[str], stimulus_nA: float = 0.2, delay: float = 1.0,
             segment_length: float = 40.0, cm: float = 1.0, Ra: float = 100.0) -> NeuronCell:
    """An SWC reconstruction read by NEURON's Import3d, the mechanisms everywhere, a step
    into the root section's middle; sites: the root and the section end farthest from it."""
    h.load_file("import3d.hoc")
    reader = h.Import3d_SWC_read()
    reader.quiet = 1
    reader.input(str(path))
    h.Import3d_GUI(reader, 0).instantiate(None)
    sections = list(h.allsec())
    root = h.SectionRef(sec=sections[0]).root
    for sec in sections:
        sec.nseg = 1 + 2 * int(sec.L / (2 * segment_length))
        sec.cm, sec.Ra = cm, Ra
        for m in mechanisms:
            sec.insert(original_name(m))
    h.distance(0, root(0.5))
    far = max(sections, key=lambda s: h.distance(s(1.0)))
    stim = h.IClamp(root(0.5))
    stim.delay, stim.dur, stim.amp = delay, 1e9, stimulus_nA
    return NeuronCell(sections, [root(0.5), far(1.0)], keep=[stim])


def _ion_of(concentration: str) -> str:
    """``cai`` -> ``ca``."""
    return concentration[:-1]


def check_files(mod_files: Sequence[str], params: Sequence[Any] | None, out_dir: str, dt: float, t_end: float,
                stimulus_nA: float, morphology: str | None = None, scheme: str | None = None) -> NeuronReport:
    """``gradgen check --target neuron``: convert, build and check on the cable of the Arbor
    check (500 µm, diam 1 µm, 51 segments, step at x = 0) or on an SWC morphology."""
    from gradgen.convert import convert

    manifest = convert(mod_files, out_dir, params, scheme=scheme, target="neuron")
    mechanisms = [m.original for m in manifest.mechanisms if m.kind != "point"]
    synapses = [m.original for m in manifest.mechanisms if m.kind == "point"]
    model = NeuronModel.load(out_dir)
    weights = {p.name: SYNAPSE_WEIGHT_US for p in manifest.parameters if p.default is None}

    def build(h: Any) -> NeuronCell:
        cell = swc_cell(h, morphology, mechanisms, stimulus_nA) if morphology else \
            cable(h, mechanisms, stimulus_nA=stimulus_nA)
        drive_synapses(h, cell, synapses)
        cell.fixed_reversal = sorted({_ion_of(c) for c in manifest.coupling.concentrations})
        return cell

    return check_cell(model, build, t_end, dt, values=weights)


#: the gradient mechanisms' V differs from the originals' by rounding (≤ 2e-11 mV measured
#: over 50 ms of HH spiking); the issue's bound
FORWARD_TOLERANCE_MV = 1e-9


def check_command(args: Any) -> int:
    """``gradgen check --target neuron``: the report as text or JSON; exit 0 within tolerance."""
    if args.coverage or any(Path(m).is_dir() for m in args.mod):
        raise GradgenError("--target neuron checks the given files together, not a coverage table",
                           hint="name .mod files and drop --coverage")
    params: list[ParamRef] | None = None if args.all_params else parse_param_list(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        report = check_files(args.mod, params, str(Path(tmp) / "out"), args.dt, args.tfinal,
                             args.stimulus, args.morphology, args.scheme)
    ok = report.forward_max_abs_diff_mV <= FORWARD_TOLERANCE_MV and all(
        max(errors) <= args.tolerance for errors in report.dv_rel_error)
    if args.json:
        print(json.dumps({"ok": ok, **report.as_dict()}))
        return 0 if ok else 1
    print(f"NEURON ({args.scheme or 'shadow'} carrier), dt {report.dt} ms, {args.tfinal} ms: forward max |V_gradient - V_original| = "
          f"{report.forward_max_abs_diff_mV:.3g} mV (tolerance {FORWARD_TOLERANCE_MV:g})")
    print(f"{'parameter':<28} {'dV/dθ rel. error':>18} {'FD convergence':>16}")
    for name, errors, conv in zip(report.parameters, report.dv_rel_error, report.fd_convergence):
        print(f"{name:<28} {max(errors):>18.3e} {conv:>16.1e}")
    print(f"loss gradient (θ-scaled) rel. error: {report.loss_gradient_rel_error:.3e}")
    print("OK" if ok else f"FAILED (tolerance {args.tolerance:g})")
    return 0 if ok else 1
