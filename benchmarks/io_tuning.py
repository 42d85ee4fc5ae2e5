"""The inferior-olive experiment: Adam on gradients against CMA-ES, on the same problem.

Problem (examples/io.toml): the IO model on a morphology, target = the model with 7 of its
12 conductances changed (as in the original study), 1000 ms at dt 0.025 ms, somatic V
sampled every 1 ms, loss ½·mean((V − V*)²), parameters scaled by their defaults (z = 1 at
the start). Adam: learning rate 1e-2, one gradient-system run per iteration. CMA-ES:
population 20, σ0 0.1 from all-ones, each generation 20 original cells in one Arbor
simulation. Both single-threaded, both stop at an RMS error of 0.5 mV, after 300
iterations or after BUDGET_S seconds of wall time each (360 s on the bundled cell, 240 s
on C4A, so the whole benchmark fits in ~25 minutes on a 2-core machine) — whichever comes
first.

For each morphology ("bundled" = morphologies/io_like.swc, "C4A" = ../shared/data/C4A.swc
when present) it also measures the gradient system's wall time relative to a plain
simulation of the same cell (median of 3, construction included, as the optimisers pay it)
for K = 12 tuned conductances and for the 17-parameter problem (+ 5 reversal potentials,
each tied across the mechanisms that use it: 23 model parameters, so 23 carriers), and on
the bundled cell runs Adam on the 17-parameter problem.

Writes benchmarks/results/io_tuning.json and io_tuning_<morphology>.png.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradgen.tuning.config import TuneConfig, load_config  # noqa: E402
from gradgen.tuning.optim import Budget, History, run_adam, run_cmaes  # noqa: E402
from gradgen.tuning.plots import plot_loss  # noqa: E402
from gradgen.tuning.problem import TuningProblem, rms_of_loss  # noqa: E402
from gradgen.tuning.run import setup  # noqa: E402

BUDGET_S = {"bundled": 360.0, "C4A": 240.0}  # per method; C4A runs cost ~10x more each
BUDGET_17_S = 150.0
ITERATIONS = 300
STOP_RMS_MV = 0.5
MORPHOLOGIES = {"bundled": ROOT / "morphologies" / "io_like.swc",
                "C4A": ROOT.parent / "shared" / "data" / "C4A.swc"}
RESULTS = ROOT / "benchmarks" / "results"
REVERSAL_TIES = {
    "V_Na": ["io_soma.V_Na", "io_axon.V_Na"],
    "V_K": ["io_soma.V_K", "io_dend.V_K", "io_axon.V_K"],
    "V_Ca": ["io_soma.V_Ca", "io_dend.V_Ca"],
    "V_h": ["io_dend.V_h"],
    "V_l": ["io_soma.V_l", "io_dend.V_l", "io_axon.V_l"],
}


def config(morphology: Path, reversals: bool) -> TuneConfig:
    base = load_config(ROOT / "examples" / "io.toml")
    if not reversals:
        return dataclasses.replace(base, morphology=morphology)
    names = list(REVERSAL_TIES)
    return dataclasses.replace(
        base, morphology=morphology, parameters=base.parameters + names, ties=dict(REVERSAL_TIES),
        transforms={**base.transforms, **{n: "scaled" for n in names}})


def cost(problem: TuningProblem, repeats: int = 3) -> dict:
    """Median wall time of one gradient-system run and of one plain run, and their ratio."""
    z = problem.param.z0()
    values = problem.param.model_values(z)
    problem.evaluate(z)  # builds the gradient catalogue once, outside the timing
    grad, plain = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        problem.evaluate(z)
        grad.append(time.perf_counter() - start)
        start = time.perf_counter()
        problem.trace(values)
        plain.append(time.perf_counter() - start)
    g, p = statistics.median(grad), statistics.median(plain)
    return {"tuned_parameters": len(problem.param.parameters),
            "model_parameters": len(problem.param.thetas),
            "gradient_run_s": g, "plain_run_s": p, "ratio": g / p}


def summary(history: History) -> dict:
    out = {"final_rms_mV": rms_of_loss(history.best_loss), "iterations": len(history.rows),
           "simulations": history.simulations, "seconds": history.seconds}
    for level, key in ((1.0, "1mV"), (0.5, "0.5mV")):
        row = history.first_reaching(level)
        out[f"sims_to_{key}"] = row["simulations"] if row else None
        out[f"seconds_to_{key}"] = row["seconds"] if row else None
    return out


def run_morphology(name: str, path: Path, work: Path) -> dict:
    budget = Budget(ITERATIONS, BUDGET_S[name], STOP_RMS_MV)
    problem = setup(config(path, False), work / f"{name}12").problem
    entry: dict = {"morphology": str(path.relative_to(ROOT.parent)),
                   "start_rms_mV": rms_of_loss(problem.loss_of(problem.trace(problem.param.model_values(problem.param.z0()))))}
    entry["gradient_cost"] = {"K12": cost(problem)}
    adam = run_adam(problem, budget, 1e-2)
    cmaes = run_cmaes(problem, budget, population=20, sigma0=0.1, seed=1)
    entry["adam"], entry["cmaes"] = summary(adam), summary(cmaes)
    entry["adam"]["history"], entry["cmaes"]["history"] = adam.rows, cmaes.rows
    plot_loss({"Adam (gradients)": adam, "CMA-ES (population 20)": cmaes},
              RESULTS / f"io_tuning_{name}.png", f"IO tuning, {name} morphology, 12 conductances")
    problem17 = setup(config(path, True), work / f"{name}17").problem
    entry["gradient_cost"]["K17"] = cost(problem17)
    if name == "bundled":
        adam17 = run_adam(problem17, Budget(ITERATIONS, BUDGET_17_S, STOP_RMS_MV), 1e-2)
        best = problem17.param.physical(adam17.best_z)
        entry["adam_17_parameters"] = {**summary(adam17), "final_values": best,
                                       "history": adam17.rows}
    return entry


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"setting": {"t_end_ms": 1000.0, "dt_ms": 0.025, "sample_dt_ms": 1.0,
                       "loss": "0.5*mean((V-V*)^2), somatic V", "adam_learning_rate": 1e-2,
                       "cmaes_population": 20, "cmaes_sigma0": 0.1, "stop_rms_mV": STOP_RMS_MV,
                       "iteration_cap": ITERATIONS, "budget_s_per_method": BUDGET_S,
                       "budget_s_17_parameters": BUDGET_17_S, "threads": 1,
                       "machine": f"{platform.machine()}, {platform.python_version()}"}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in MORPHOLOGIES.items():
            if not path.exists():
                out[name] = None
                print(f"{name}: {path} not found, skipped")
                continue
            out[name] = run_morphology(name, path, Path(tmp))
            (RESULTS / "io_tuning.json").write_text(json.dumps(out, indent=1) + "\n")
            e = out[name]
            print(f"{name}: adam {e['adam']['final_rms_mV']:.3f} mV in {e['adam']['simulations']} sims, "
                  f"cmaes {e['cmaes']['final_rms_mV']:.3f} mV in {e['cmaes']['simulations']} sims; "
                  f"cost K12 {e['gradient_cost']['K12']['ratio']:.1f}x, K17 {e['gradient_cost']['K17']['ratio']:.1f}x")
    (RESULTS / "io_tuning.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
