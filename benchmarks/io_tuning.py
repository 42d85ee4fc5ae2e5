"""The inferior-olive experiment: Levenberg–Marquardt and Adam on sensitivities against
CMA-ES, on the same problem, interleaved in one run.

Problem (examples/io.toml): the IO model on a morphology, target = the model with 7 of its
12 conductances changed (as in the original study), 1000 ms at dt 0.025 ms, somatic V
sampled every 1 ms, loss ½·mean((V − V*)²). Every method works on the same z: the ``log``
transform (p = p₀·eᶻ) from the same start (the .mod defaults, z = 0).

- ``lm``: Levenberg–Marquardt on J = dr/dz (gradgen.tuning.lm), one gradient run
  per trial point, at most LM_RUNS runs, stops at STOP_LM_MV (below the 0.5 mV mark, to show
  where it converges).
- ``cmaes``: population 20, σ0 0.1, seed 1, each generation 20 original cells in one Arbor
  simulation; at most CMAES_GENERATIONS generations, i.e. ≥ 25× LM's budget in simulations
  (CMAES_GENERATIONS_BY_VARIANT for the 17-parameter variants, where CMA-ES is far from
  0.5 mV after 25).
- ``adam``: learning rate 1e-2, one gradient run per iteration.
- ``de`` (``--methods``): scipy's differential evolution, population 20 drawn like CMA-ES's
  first generation, box z0 ± 1, one Arbor simulation per generation, CMA-ES's caps.

CMA-ES, DE and Adam stop at 0.5 mV RMS (noisy target: 0.51 mV, 0.1 mV above the noise), at
their caps or after a wall-time budget each. A
gradient run counts as one simulation, a CMA-ES candidate as one. Single-threaded (Arbor and
BLAS). Gradient runs (LM, Adam) use the exact carrier (``--carrier exact``, the default: u_k
solved on the CV tree, gradgen.targets.arbor.exact_carrier) or the ion carrier (``--carrier
ion``); ``gradient_cost`` records which ran and its cost against a plain run, ``lm.step_s``
LM's own arithmetic per iteration.

Variants (``--variants``, comma-separated; default ``12``):

- ``12``: 12 conductances (keys ``bundled`` / ``C4A`` → method → ``final_rms_mV``,
  ``simulations``, ``seconds``, ``sims_to_0.5mV``, ``seconds_to_0.5mV``, …);
- ``17``: + the 5 reversal potentials, each tied across the mechanisms that use it
  (``shift`` transform, 10 mV per unit z: what ``transform = "auto"`` picks for a potential),
  keys ``bundled_17`` / ``C4A_17``; ``17bounded``: the same with each
  reversal potential bounded to its start ± 30 mV (all methods), keys ``*_17bounded``;
- ``noisy``: the target with 0.5 mV Gaussian noise (seed 0): RMS to the noisy target, RMS to
  the clean one and parameter recovery, keys ``bundled_noisy`` / ``C4A_noisy``;
- ``mismatch``: target made on the other morphology, keys ``bundled_mismatch`` / …

``gradient_cost`` (variants 12 and 17): one gradient run with ``--carrier`` against one
plain run, interleaved (:func:`cost`); ``--cost-only`` measures only that.

Writes benchmarks/results/io_tuning.json (updating the variants it ran), io_tuning_<key>.png
(loss vs simulations and vs seconds) and io_identifiability_<key>.png (J's singular values
at LM's start and end).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Single-threaded, BLAS included: with OpenBLAS's default threads on this shared 2-core
# machine one 1000×17 SVD of LM's step took 40–110 ms instead of 3 ms (measured).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradgen.losses import rms_of_loss  # noqa: E402
from gradgen.tuning.config import TuneConfig, load_config  # noqa: E402
from gradgen.tuning.de import run_de  # noqa: E402
from gradgen.tuning.identifiability import (  # noqa: E402
    format_report,
    identifiability,
    plot_identifiability,
)
from gradgen.tuning.lm import (  # noqa: E402
    GROWTH,
    INITIAL_RADIUS,
    MAX_RADIUS,
    SHRINK,
    damped_step,
    run_lm,
)
from gradgen.tuning.optim import Budget, History, run_adam, run_cmaes  # noqa: E402
from gradgen.tuning.plots import plot_loss  # noqa: E402
from gradgen.tuning.problem import TuningProblem  # noqa: E402
from gradgen.tuning.run import (
    setup,  # noqa: E402
    target_values,  # noqa: E402
)

LM_RUNS = 20
STOP_LM_MV = 1e-3
CMAES_GENERATIONS = 25  # x 20 candidates = 500 simulations = 25x LM_RUNS
# 17 parameters: CMA-ES was at 3.6 mV after 25 generations on C4A and at 1.4 mV after 40,
# and a gradient run with 23 carriers costs ~20 plain runs: with 100 generations (2000
# simulations, 100x LM_RUNS) or its wall-time budget CMA-ES runs long enough that "5x LM's
# wall time" lies inside its budget. 17bounded was run with 40.
CMAES_GENERATIONS_BY_VARIANT = {"17": 100, "17bounded": 40}
STOP_RMS_MV = 0.5
ADAM_ITERATIONS = 300
BUDGET_S = {"bundled": {"adam": 150.0, "cmaes": 300.0}, "C4A": {"adam": 150.0, "cmaes": 600.0}}
MORPHOLOGIES = {"bundled": ROOT / "morphologies" / "io_like.swc",
                "C4A": ROOT.parent / "shared" / "data" / "C4A.swc"}
NOISE_MV = 0.5
REVERSAL_BOUNDS_MV = 30.0  # "17bounded": each reversal potential within its start ± 30 mV
RESULTS = ROOT / "benchmarks" / "results"
REVERSAL_TIES = {
    "V_Na": ["io_soma.V_Na", "io_axon.V_Na"],
    "V_K": ["io_soma.V_K", "io_dend.V_K", "io_axon.V_K"],
    "V_Ca": ["io_soma.V_Ca", "io_dend.V_Ca"],
    "V_h": ["io_dend.V_h"],
    "V_l": ["io_soma.V_l", "io_dend.V_l", "io_axon.V_l"],
}


def config(morphology: Path, reversals: bool, reversal_bounds_mV: float | None = None,
           carrier: str = "exact") -> TuneConfig:
    """12 conductances (log), or + the 5 tied reversal potentials (shift), optionally
    bounded to their start ± ``reversal_bounds_mV``; gradients with ``carrier``."""
    base = dataclasses.replace(load_config(ROOT / "examples" / "io.toml"), carrier=carrier)
    logs = {n: "log" for n in base.parameters}
    if not reversals:
        return dataclasses.replace(base, morphology=morphology, transforms=logs)
    names = list(REVERSAL_TIES)
    bounds = dict(base.bounds)
    if reversal_bounds_mV is not None:
        defaults = {f"{m.name}.{v.name}": v.value for m in base.mechanisms for v in m.parameters}
        for name in names:
            start = defaults[REVERSAL_TIES[name][0]]
            bounds[name] = (start - reversal_bounds_mV, start + reversal_bounds_mV)
    return dataclasses.replace(
        base, morphology=morphology, parameters=base.parameters + names, ties=dict(REVERSAL_TIES),
        transforms={**logs, **{n: "shift" for n in names}}, bounds=bounds)


def cost(problem: TuningProblem, repeats: int = 11) -> dict:
    """Median CPU time (and wall time) of one gradient run with the problem's carrier (the
    exact one unless --carrier ion; the problem's evaluate: loss, gradient and Jacobian) and of
    one plain run (trace), both as the
    optimisers pay them (cell, catalogue load and simulation built per call; catalogues
    compiled before), interleaved, and their ratio. CPU time because the machine is shared:
    its wall clock counts other users' processes (single-threaded runs: CPU time is what an
    idle machine's wall clock would show)."""
    z = problem.param.z0()
    values = problem.param.model_values(z)
    problem.evaluate(z)  # builds the gradient catalogue once, outside the timing
    problem.trace(values)
    seconds: dict[str, list[float]] = {"grad": [], "plain": [], "grad_wall": [], "plain_wall": []}
    for _ in range(repeats):
        for name, call in (("grad", lambda: problem.evaluate(z)), ("plain", lambda: problem.trace(values))):
            start, start_wall = time.process_time(), time.perf_counter()
            call()
            seconds[name].append(time.process_time() - start)
            seconds[f"{name}_wall"].append(time.perf_counter() - start_wall)
    exact = problem.model.simulation(problem.spec, problem.sites).exact
    m = {name: statistics.median(s) for name, s in seconds.items()}
    return {"tuned_parameters": len(problem.param.parameters),
            "model_parameters": len(problem.param.thetas),
            "carrier": "exact" if exact else "ion",
            "clock": "process CPU time (the machine is shared; *_wall_s: wall clock)", "repeats": repeats,
            "gradient_run_s": m["grad"], "plain_run_s": m["plain"], "ratio": m["grad"] / m["plain"],
            "gradient_run_wall_s": m["grad_wall"], "plain_run_wall_s": m["plain_wall"],
            "wall_ratio": m["grad_wall"] / m["plain_wall"]}


def step_seconds(jacobian: np.ndarray, repeats: int = 5) -> float:
    """Median wall time of LM's own arithmetic per iteration (SVD and the bisection for the
    damping, the radius small enough that it runs), outside the simulation."""
    residuals = jacobian @ np.ones(jacobian.shape[1])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        damped_step(residuals, jacobian, 1e-2)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def summary(history: History, problem: TuningProblem, clean: np.ndarray | None,
            truth: dict[str, float], cpu_seconds: float) -> dict:
    """``cpu_seconds``: the method's process CPU time in all; against ``seconds`` (wall) it
    shows how much of the wall clock other users' jobs took on the shared machine."""
    out = {"final_rms_mV": rms_of_loss(history.best_loss), "iterations": len(history.rows),
           "simulations": history.simulations, "seconds": history.seconds,
           "cpu_seconds": cpu_seconds, "cpu_over_wall": cpu_seconds / history.seconds}
    for level, key in ((1.0, "1mV"), (0.5, "0.5mV")):
        row = history.first_reaching(level)
        out[f"sims_to_{key}"] = row["simulations"] if row else None
        out[f"seconds_to_{key}"] = row["seconds"] if row else None
    values = problem.param.physical(history.best_z)
    if clean is not None:
        v = problem.trace(problem.param.model_values(history.best_z))
        out["final_rms_to_clean_mV"] = float(np.sqrt(np.mean((v - clean)[problem.blocks[0].mask]**2)))
    out["final_values"] = values
    if truth:
        ratios = {n: values[n] / truth[n] for n in values}
        out["recovery"] = {"final_over_target": ratios,
                           "max_abs_log_ratio": max(abs(math.log(r)) for r in ratios.values()
                                                    if r > 0)}
    out["history"] = history.rows
    return out


def run_methods(key: str, problem: TuningProblem, budgets: dict, clean: np.ndarray | None,
                truth: dict[str, float], stop_rms_mV: float, methods: list[str],
                generations: int) -> dict:
    """Every method from the same start on the same target, LM first."""
    entry: dict = {"start_rms_mV": rms_of_loss(problem.loss_of(problem.trace(
        problem.param.model_values(problem.param.z0())))), "stop_rms_mV": stop_rms_mV,
        "transforms": {p.name: p.transform for p in problem.param.parameters},
        "cmaes_generation_cap": generations}
    histories = {}
    cpu = time.process_time()
    lm = run_lm(problem, Budget(LM_RUNS, rms_mV=STOP_LM_MV), progress=False)
    cpu = time.process_time() - cpu
    histories["LM (sensitivity Jacobian)"] = lm.history
    entry["lm"] = {**summary(lm.history, problem, clean, truth, cpu), "status": lm.status,
                   "step_s": step_seconds(lm.start_jacobian),
                   "trust_radius": {"initial": INITIAL_RADIUS, "max": MAX_RADIUS,
                                    "shrink": SHRINK, "growth": GROWTH}}
    report(key, "lm", entry["lm"])
    reports = {"LM start": identifiability(lm.start_jacobian, problem.param.names),
               "LM end": identifiability(lm.end_jacobian, problem.param.names)}
    entry["lm"]["identifiability"] = reports
    print("\n".join(format_report(r, f"{key}, {when}") for when, r in reports.items()), flush=True)
    plot_identifiability(reports, RESULTS / f"io_identifiability_{key}.png",
                         f"IO, {key}: what the somatic trace determines (LM start and end)")
    population = Budget(generations, budgets["cmaes"], stop_rms_mV)
    runs = {"cmaes": ("CMA-ES (population 20)", lambda: run_cmaes(
                problem, population, population=20, sigma0=0.1, seed=1, progress=False)),
            "de": ("differential evolution (population 20)", lambda: run_de(
                problem, population, population=20, sigma0=0.1, seed=1, progress=False)),
            "adam": ("Adam (gradients)", lambda: run_adam(
                problem, Budget(ADAM_ITERATIONS, budgets["adam"], stop_rms_mV), 1e-2, progress=False))}
    for method in methods:
        label, run = runs[method]
        cpu = time.process_time()
        histories[label] = run()
        entry[method] = summary(histories[label], problem, clean, truth, time.process_time() - cpu)
        report(key, method, entry[method])
    plot_loss(histories, RESULTS / f"io_tuning_{key}.png", f"IO tuning, {key}")
    return entry


def report(key: str, method: str, e: dict) -> None:
    print(f"{key} {method}: {e['final_rms_mV']:.3g} mV after {e['simulations']} sims "
          f"({e['seconds']:.1f} s); 0.5 mV at {e['sims_to_0.5mV']} sims ({e['seconds_to_0.5mV']} s)"
          + (f"; to clean {e['final_rms_to_clean_mV']:.3g} mV" if "final_rms_to_clean_mV" in e else ""),
          flush=True)


def variant(name: str, path: Path, kind: str, work: Path, methods: list[str], carrier: str) -> dict:
    cfg = config(path, kind.startswith("17"), REVERSAL_BOUNDS_MV if kind == "17bounded" else None,
                 carrier)
    s = setup(cfg, work / f"{name}_{kind}")
    problem = s.problem
    known = target_values(cfg, problem.param)
    truth = {p.name: known[p.copies[0]] for p in problem.param.parameters}
    clean = None
    extra: dict = {"morphology": str(path.relative_to(ROOT.parent)), "carrier": carrier}
    if kind in ("12", "17"):
        extra["gradient_cost"] = {f"K{kind}": cost(problem)}
    else:  # load the gradient catalogue before any timing, as cost() does (LM's first run
        problem.evaluate(problem.param.z0())  # paid 2.5–3.5 s for it without this)
    if kind == "17bounded":
        extra["reversal_bounds_mV"] = REVERSAL_BOUNDS_MV
    if kind == "noisy":
        clean = problem.target.copy()
        problem.set_target(clean + np.random.default_rng(0).normal(0.0, NOISE_MV, clean.shape))
        extra["noise_mV"] = NOISE_MV
    if kind == "mismatch":
        other = next(p for n, p in MORPHOLOGIES.items() if n != name)
        other_problem = setup(dataclasses.replace(cfg, morphology=other), work / f"{name}_other").problem
        clean = problem.target.copy()  # the same model on this morphology: for reference
        problem.set_target(other_problem.target)
        extra["target_morphology"] = str(other.relative_to(ROOT.parent))
    key = name if kind == "12" else f"{name}_{kind}"
    # the noisy target cannot be fitted below its noise: stop within 0.1 mV (RMS) of it
    stop = math.hypot(NOISE_MV, 0.1) if kind == "noisy" else STOP_RMS_MV
    generations = CMAES_GENERATIONS_BY_VARIANT.get(kind, CMAES_GENERATIONS)
    return {**extra, **run_methods(key, problem, BUDGET_S[name], clean, truth, stop, methods,
                                   generations)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="12", help="comma-separated: 12, 17, 17bounded, noisy, mismatch")
    parser.add_argument("--morphologies", default="bundled,C4A")
    parser.add_argument("--methods", default="cmaes,adam",
                        help="after lm, in this order: any of cmaes, de, adam")
    parser.add_argument("--carrier", default="exact", choices=("exact", "ion"),
                        help="how the gradient runs (LM, Adam) carry dV/dθ (GradientModel.carrier)")
    parser.add_argument("--cost-only", action="store_true",
                        help="only measure gradient_cost (variants 12, 17) and update those keys")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "io_tuning.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out.setdefault("setting", {}).update({
        "t_end_ms": 1000.0, "dt_ms": 0.025, "sample_dt_ms": 1.0,
        "transform": "log (conductances); shift, 10 mV per unit z (reversal potentials)",
        "loss": "0.5*mean((V-V*)^2), somatic V", "lm_runs_cap": LM_RUNS, "lm_stop_rms_mV": STOP_LM_MV,
        "adam_learning_rate": 1e-2, "adam_iteration_cap": ADAM_ITERATIONS, "cmaes_population": 20,
        "cmaes_sigma0": 0.1, "cmaes_generation_cap": CMAES_GENERATIONS,
        "cmaes_generation_cap_by_variant": CMAES_GENERATIONS_BY_VARIANT, "stop_rms_mV": STOP_RMS_MV,
        "budget_s": BUDGET_S, "threads": 1, "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "machine": f"{platform.machine()}, {platform.python_version()}"})
    if not args.cost_only:
        out["setting"][f"methods_{args.variants}"] = ["lm"] + args.methods.split(",")
        out["setting"][f"carrier_{args.variants}"] = args.carrier
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.variants.split(","):
            for name in args.morphologies.split(","):
                morphology = MORPHOLOGIES[name]
                key = name if kind == "12" else f"{name}_{kind}"
                needed = MORPHOLOGIES.values() if kind == "mismatch" else [morphology]
                if not all(p.exists() for p in needed):
                    out[key] = None
                    print(f"{key}: a morphology is missing, skipped")
                    continue
                if args.cost_only:
                    if kind in ("12", "17"):
                        cfg = config(morphology, kind == "17", None, args.carrier)
                        out.setdefault(key, {})["gradient_cost"] = {
                            f"K{kind}": cost(setup(cfg, Path(tmp) / key).problem)}
                        print(key, out[key]["gradient_cost"], flush=True)
                else:
                    out[key] = variant(name, morphology, kind, Path(tmp), args.methods.split(","),
                                       args.carrier)
                path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
