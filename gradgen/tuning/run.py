"""Tune a multicompartment model to a voltage trace: Levenberg–Marquardt or Adam on
sensitivities, or CMA-ES or differential evolution on populations of original cells.

:func:`run_tuning` takes a config (see :mod:`gradgen.tuning.config`), converts the tuned
parameters' mechanisms, builds the cell from its SWC file, makes or reads the target, runs
the chosen optimiser and writes into the output directory

- ``results.json``: start, final and (if known) target values, loss, RMS error, counts,
  the per-iteration history and the identifiability report (J's singular values at the
  start and the end, the parameter combinations the data do not determine);
- ``loss.png``, ``traces.png`` (target, before, after) and ``identifiability.png``;
- ``target.npz`` (t, v) and a checkpoint (``adam.npz`` / ``lm.npz`` / ``cmaes.npz``, data
  only, tied to this config: see :mod:`gradgen.tuning.checkpoint`) to resume from.

The output directory must be new or an earlier gradgen output (see :mod:`gradgen.outputs`).
"""
from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arbor
import numpy as np
from arbor import units as U

from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.losses import LOSSES, ResidualBlock, rms_of_loss
from gradgen.outputs import OutputDir
from gradgen.params import ParamRef
from gradgen.strict_json import strict_json
from gradgen.targets.arbor.decor import CellSpec, Decor
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.morphology import cv_policy, load_swc
from gradgen.tuning.checkpoint import Checkpoint
from gradgen.tuning.config import TuneConfig, load_config
from gradgen.tuning.de import run_de
from gradgen.tuning.distributed import DaskPopulation
from gradgen.tuning.identifiability import (
    format_report,
    identifiability,
    plot_identifiability,
)
from gradgen.tuning.lbfgs import run_lbfgs
from gradgen.tuning.lm import run_lm
from gradgen.tuning.optim import Budget, History, run_adam, run_cmaes
from gradgen.tuning.params import Parameterisation, TunedParameter
from gradgen.tuning.plots import plot_loss, plot_traces
from gradgen.tuning.problem import Protocol, TuningProblem
from gradgen.tuning.recordings import TargetFile, read_target


def cell_spec(config: TuneConfig) -> CellSpec:
    """The cell of the config: its morphology, membrane and painted mechanisms."""
    cell = load_swc(config.morphology)
    decor = Decor()
    decor.set_property(Vm=config.v_init * U.mV, cm=config.cm * 0.01 * U.F / U.m2,
                       rL=config.rL * U.Ohm * U.cm)
    for region, names in config.paint.items():
        for name in names:
            values = {k.partition(".")[2]: v for k, v in config.values.items()
                      if k.partition(".")[0] == name}
            decor.paint(f'"{region}"', arbor.density(name, values))
    return CellSpec(cell.morphology, decor, cell.labels, cv_policy(config.cv_policy))


def parameterisation(config: TuneConfig, defaults: dict[str, float]) -> Parameterisation:
    """Tuned parameters starting at [model.values] or the .mod defaults."""
    tuned = []
    for name in config.parameters:
        copies = config.copies(name)
        starts = {config.values.get(c, defaults[c]) for c in copies}
        if len(starts) != 1:
            raise GradgenError(f"tied parameter '{name}': its copies start at different values "
                               f"{sorted(starts)}", hint="set them equal in [model.values]")
        tuned.append(TunedParameter(name, tuple(copies), starts.pop(), config.transforms[name],
                                    config.bounds.get(name, (-np.inf, np.inf))))
    return Parameterisation(tuned)


def target_values(config: TuneConfig, param: Parameterisation) -> dict[str, float]:
    """Model values of the known-parameter target: the start, with the target's changes."""
    values = param.model_values(param.z0())
    for name, value in config.target_values.items():
        for copy in config.copies(name):
            values[copy] = value
    return values


@dataclass
class Setup:
    config: TuneConfig
    model: Any  # a GradientModel, or a NeuronModel for target "neuron"
    problem: TuningProblem


def setup(config: TuneConfig, work: Path) -> Setup:
    """Convert the mechanisms for the tuned copies and build the problem with its target."""
    model_dir = work / "model"
    convert([m.mechanism.source for m in config.mechanisms], model_dir,
            [ParamRef.parse(t) for t in config.thetas()], target=config.target)
    protocols = config.protocols or [
        Protocol(config.t_end, config.dt, config.sample_dt, tuple(config.windows))]
    if config.target == "neuron":
        from gradgen.tuning.neuron_problem import neuron_problem

        problem = neuron_problem(config, model_dir, protocols, lambda defaults: parameterisation(config, defaults))
        model = problem.model
    else:
        model = GradientModel.load(model_dir, carrier=config.carrier)
        problem = TuningProblem(model, cell_spec(config), config.probe, protocols,
                                parameterisation(config, model.defaults), loss=LOSSES[config.loss])
    param = problem.param
    if config.target_files:
        targets = {p.name: read_target(config.target_files[p.name], p.times(), p.sample_dt,
                                   p.t_end)[None, :] for p in protocols}
    else:
        targets = problem.voltages(target_values(config, param))
    problem.set_blocks([ResidualBlock(p.name, 0, targets[p.name][0], p.mask(),
                                      config.protocol_weights.get(p.name, 1.0)) for p in protocols])
    return Setup(config, model, problem)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _file_description(target: TargetFile) -> str | dict:
    """The target file's hash, with the choice of trace in a recording (it changes the target)."""
    if not target.is_recording:
        return _sha256(target.path)
    return {"sha256": _sha256(target.path), "series": target.series, "sweep": target.sweep,
            "channel": target.channel, "start_ms": target.start}


def run_description(config: TuneConfig) -> dict:
    """Everything in the config that shapes a run except its budget (which a resume may
    raise): a checkpoint belongs to this description (see :mod:`gradgen.tuning.checkpoint`)."""
    c = config
    if c.method == "adam":
        settings = {"learning_rate": c.learning_rate}
    elif c.method in ("lm", "lbfgs"):
        settings = {}
    else:
        settings = {"population": c.population, "sigma0": c.sigma0, "seed": c.seed}
    return {"method": c.method, "settings": settings, "loss": c.loss,
            "mechanisms": [hashlib.sha256(m.mechanism.text.encode()).hexdigest() for m in c.mechanisms],
            "morphology": _sha256(c.morphology), "cv_policy": c.cv_policy, "paint": c.paint,
            "values": c.values, "membrane": [c.v_init, c.cm, c.rL], "probe": c.probe, "target": c.target,
            "protocol": [c.t_end, c.dt, c.sample_dt, c.windows],
            "protocols": [repr(p) for p in c.protocols], "protocol_weights": c.protocol_weights,
            "parameters": c.parameters, "ties": c.ties, "transforms": c.transforms,
            "bounds": {k: [repr(low), repr(high)] for k, (low, high) in c.bounds.items()},
            "target_values": c.target_values,
            "target_files": {name: _file_description(f) for name, f in c.target_files.items()}}


def optimise(s: Setup, out: OutputDir, checkpoint: Checkpoint,
             progress: bool = True) -> tuple[History, dict[str, np.ndarray]]:
    """The history, and J = dr/dz at the start and the best point (taken from LM's own runs;
    two extra gradient runs, not counted as simulations, for the other methods)."""
    c, problem = s.config, s.problem
    budget = Budget(c.iterations, c.seconds, c.stop_rms_mV)
    if c.method == "lm":
        run = run_lm(problem, budget, checkpoint, progress)
        if run.start_jacobian is not None:
            return run.history, {"start": run.start_jacobian, "end": run.end_jacobian}
        history = run.history
    elif c.method == "adam":
        history = run_adam(problem, budget, c.learning_rate, checkpoint, progress)
    elif c.method == "lbfgs":  # no checkpoint: scipy's L-BFGS-B state is not resumable
        history = run_lbfgs(problem, budget, progress)
    else:
        with ExitStack() as stack:
            losses = None if c.distributed is None else stack.enter_context(DaskPopulation(
                c, out.path / "workers", None if c.distributed == "local" else c.distributed, c.workers))
            if c.method == "de":
                history = run_de(problem, budget, c.population, c.sigma0, seed=c.seed,
                                 progress=progress, population_losses=losses)
            else:
                history = run_cmaes(problem, budget, c.population, c.sigma0, c.seed,
                                    checkpoint=checkpoint, progress=progress,
                                    population_losses=losses)
    return history, {"start": problem.evaluate(problem.param.z0()).jacobian,
                     "end": problem.evaluate(np.array(history.best_z)).jacobian}


def run_tuning(config_path: Path | str, progress: bool = True) -> dict:
    """Run the config file end to end (see :func:`run_config`)."""
    return run_config(load_config(config_path), progress)


def run_config(config: TuneConfig, progress: bool = True) -> dict:
    """Run a config end to end; resumes from the output directory's checkpoint if present."""
    inputs = [config.path, config.morphology, *(m.mechanism.source for m in config.mechanisms)]
    out = OutputDir.claim(config.output, inputs + [f.path for f in config.target_files.values()])
    checkpoint = Checkpoint(out.path / f"{config.method}.npz", run_description(config), out.replacing)
    checkpoint.load()  # another run's or a damaged checkpoint: refused before anything is written
    out.mark()  # before convert writes model/ into it
    s = setup(config, out.path)
    problem, param = s.problem, s.problem.param
    several = len(problem.protocols) > 1  # then files per protocol: target_<name>.npz, ...
    for b in problem.blocks:
        suffix = f"_{b.protocol}" if several else ""
        with out.replacing(f"target{suffix}.npz") as tmp:
            np.savez(tmp, t=problem.protocols[b.protocol].times(), v=b.target)
    history, jacobians = optimise(s, out, checkpoint, progress)
    reports = {when: identifiability(j, param.names) for when, j in jacobians.items()}
    best = np.array(history.best_z)
    before = problem.voltages(param.model_values(param.z0()))
    after = problem.voltages(param.model_values(best))
    known = target_values(config, param) if not config.target_files else {}
    results = {
        "config": str(config.path), "output": str(out.path), "method": config.method,
        "parameters": [{"name": p.name, "copies": list(p.copies), "transform": p.transform,
                        "start": p.default, "final": p.value(z),
                        **({"target": known[p.copies[0]]} if known else {})}
                       for p, z in zip(param.parameters, best)],
        "protocols": list(problem.protocols),
        "final_loss": problem.loss_of_voltages(after),
        "final_rms_mV": rms_of_loss(problem.loss_of_voltages(after)),
        "start_rms_mV": rms_of_loss(problem.loss_of_voltages(before)),
        "iterations": len(history.rows), "simulations": history.simulations,
        "seconds": history.seconds, "identifiability": reports, "history": history.rows,
    }
    out.write_text("results.json", strict_json(results, indent=2) + "\n")
    if progress:
        print("\n".join(format_report(r, when) for when, r in reports.items()))
    with out.replacing("identifiability.png") as tmp:
        plot_identifiability(reports, tmp, f"{config.path.name}: what the data determine")
    with out.replacing("loss.png") as tmp:
        plot_loss({config.method: history}, tmp, f"{config.path.name}: {config.method}")
    for b in problem.blocks:
        suffix = f"_{b.protocol}" if several else ""
        with out.replacing(f"traces{suffix}.png") as tmp:
            plot_traces(problem.protocols[b.protocol].times(),
                        {"target": b.target, "before": before[b.protocol][b.probe],
                         "after": after[b.protocol][b.probe]},
                        tmp, f"{b.protocol}: RMS error {results['start_rms_mV']:.2f} → "
                        f"{results['final_rms_mV']:.2f} mV (all protocols)")
    return results
