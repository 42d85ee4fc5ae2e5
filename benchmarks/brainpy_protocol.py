"""The BrainPy single-neuron fitting protocol (Wang et al. 2024) on gradgen's HH in Arbor.

An HH neuron (mechanisms/hh.mod on one compartment, a 20 µm × r 10 µm soma) with four
parameters — gnabar, gkbar, gl and el — is fitted to five step-current traces (0.02 to
0.3 nA from 10 to 90 ms, 100 ms at dt 0.025 ms, V every 0.5 ms) that the model made with
its known parameters (the .mod defaults). Loss: ½·mean squared error over all samples.

Per repeat (a seed), every method starts from the same random points: conductances
log-uniform within ×/÷ 2 of the truth, el uniform in [-65, -45] mV; bounds ×/÷ 4 and
[-80, -30] mV. Gradient methods run from 20 random starts and keep the best (as in the
protocol): ``lm`` (Levenberg–Marquardt on the sensitivity Jacobian) and ``lbfgs``
(scipy's L-BFGS-B on the loss gradient), each start until RMS < 1e-3 mV or 40 / 100
evaluations. Population methods start from the first random point: ``cmaes`` (population
20, σ0 0.5 in z) and ``de`` (scipy-style best1bin, population 20), 60 generations each.
A simulation is one Arbor run of one protocol (an evaluation runs all five).

Writes benchmarks/results/brainpy_protocol.json and brainpy_protocol.png; prints a table.
Usage: python benchmarks/brainpy_protocol.py [repeats, default 10]
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import arbor  # noqa: E402
from arbor import units as U  # noqa: E402

from gradgen.convert import convert  # noqa: E402
from gradgen.errors import GradgenWarning  # noqa: E402
from gradgen.losses import ResidualBlock, rms_of_loss  # noqa: E402
from gradgen.params import ParamRef  # noqa: E402
from gradgen.targets.arbor.decor import CellSpec, Decor  # noqa: E402
from gradgen.targets.arbor.model import GradientModel  # noqa: E402
from gradgen.tuning.de import run_de  # noqa: E402
from gradgen.tuning.lbfgs import run_lbfgs  # noqa: E402
from gradgen.tuning.lm import run_lm  # noqa: E402
from gradgen.tuning.optim import Budget, History, run_cmaes  # noqa: E402
from gradgen.tuning.params import Parameterisation, TunedParameter  # noqa: E402
from gradgen.tuning.problem import Protocol, Stimulus, TuningProblem  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TRUE = {"hh.gnabar": 0.12, "hh.gkbar": 0.036, "hh.gl": 0.0003, "hh.el": -54.3}
BOUNDS = {"hh.gnabar": (0.03, 0.48), "hh.gkbar": (0.009, 0.144), "hh.gl": (0.000075, 0.0012),
          "hh.el": (-80.0, -30.0)}
AMPLITUDES_NA = [0.02, 0.06, 0.1, 0.2, 0.3]
SITE = "(location 0 0.5)"
STARTS = 20
STOP_RMS_MV = 1e-3
BUDGETS = {"lm": 40, "lbfgs": 100}  # evaluations per start
GENERATIONS = 60
POPULATION = 20


def cell() -> CellSpec:
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 10), arbor.mpoint(20, 0, 0, 10), tag=1)
    decor = Decor().set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    return CellSpec(arbor.morphology(tree), decor, arbor.label_dict({"soma": "(tag 1)"}),
                    arbor.cv_policy_fixed_per_branch(1))


def protocols() -> list[Protocol]:
    return [Protocol(100.0, 0.025, 0.5, (), (Stimulus(SITE, 10.0, 80.0, amp),), f"step_{amp}nA")
            for amp in AMPLITUDES_NA]


def parameterisation(start: dict[str, float]) -> Parameterisation:
    return Parameterisation([TunedParameter(name, (name,), start[name],
                                            "scaled" if name == "hh.el" else "log", BOUNDS[name])
                             for name in TRUE])


def random_starts(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    out = []
    for _ in range(n):
        start = {name: value * float(np.exp(rng.uniform(-np.log(2), np.log(2))))
                 for name, value in TRUE.items() if name != "hh.el"}
        start["hh.el"] = float(rng.uniform(-65.0, -45.0))
        out.append(start)
    return out


def run_method(method: str, problem: TuningProblem, starts: list[dict[str, float]], seed: int) -> dict:
    t0 = time.perf_counter()
    if method in ("lm", "lbfgs"):
        histories, params = [], []
        for start in starts:
            problem.param = parameterisation(start)
            budget = Budget(BUDGETS[method], rms_mV=STOP_RMS_MV)
            h = (run_lm(problem, budget, progress=False).history if method == "lm"
                 else run_lbfgs(problem, budget, progress=False))
            histories.append(h)
            params.append(problem.param.physical(h.best_z))
        best = min(range(len(histories)), key=lambda i: histories[i].best_loss)  # the best start
        loss, sims, found = histories[best].best_loss, sum(h.simulations for h in histories), params[best]
        sims_to = _sims_to_reach(histories, 0.01)
    else:
        problem.param = parameterisation(starts[0])
        budget = Budget(GENERATIONS, rms_mV=STOP_RMS_MV)
        h = (run_cmaes(problem, budget, POPULATION, 0.5, seed=seed, progress=False) if method == "cmaes"
             else run_de(problem, budget, POPULATION, 0.5, seed=seed, progress=False))
        loss, sims, found = h.best_loss, h.simulations, problem.param.physical(h.best_z)
        sims_to = _sims_to_reach([h], 0.01)
    seconds = time.perf_counter() - t0
    recovery = max(abs(found[n] / TRUE[n] - 1.0) for n in TRUE)
    return {"final_rms_mV": rms_of_loss(loss), "simulations": sims, "seconds": seconds,
            "sims_to_0.01mV": sims_to, "worst_parameter_rel_error": recovery,
            "parameters": found}


def _sims_to_reach(histories: list[History], rms_mV: float) -> int | None:
    """Simulations spent (runs of all starts in order) until the first row at ``rms_mV``."""
    spent = 0
    for h in histories:
        for row in h.rows:
            if row["rms_mV"] is not None and row["rms_mV"] < rms_mV:
                return spent + row["simulations"]
        spent += h.simulations
    return None


def summary(rows: list[dict], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    return statistics.fmean(values), statistics.pstdev(values)


def main(repeats: int) -> None:
    warnings.filterwarnings("ignore", category=GradgenWarning)  # one CV: no carrier split, see README
    with tempfile.TemporaryDirectory() as tmp:
        convert([ROOT / "mechanisms" / "hh.mod"], Path(tmp) / "hh", [ParamRef.parse(n) for n in TRUE])
        model = GradientModel.load(Path(tmp) / "hh")
        problem = TuningProblem(model, cell(), SITE, protocols(), parameterisation(TRUE))
        targets = problem.voltages(TRUE)
        problem.set_blocks([ResidualBlock(p.name, 0, targets[p.name][0], p.mask()) for p in protocols()])
        methods = ["lm", "lbfgs", "cmaes", "de"]
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for repeat in range(repeats):
            starts = random_starts(np.random.default_rng(repeat), STARTS)
            for method in methods:  # interleaved: every method in every repeat
                runs[method].append(run_method(method, problem, starts, seed=repeat + 1))
                r = runs[method][-1]
                print(f"repeat {repeat} {method:>6}: {r['final_rms_mV']:.3g} mV, {r['simulations']} sims, "
                      f"{r['seconds']:.1f} s", flush=True)
    table = {m: {key: summary(rows, key) for key in ("final_rms_mV", "simulations", "seconds",
                                                      "worst_parameter_rel_error")}
             for m, rows in runs.items()}
    result = {"protocol": __doc__.split("\n\n")[1], "repeats": repeats, "starts": STARTS,
              "stop_rms_mV": STOP_RMS_MV, "machine": platform.platform(),
              "summary_mean_std": table, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "brainpy_protocol.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| method | final RMS (mV) | simulations | seconds | worst parameter error |")
    print("|---|---|---|---|---|")
    for m, s in table.items():
        print(f"| {m} | {s['final_rms_mV'][0]:.2g} ± {s['final_rms_mV'][1]:.2g} | "
              f"{s['simulations'][0]:.0f} ± {s['simulations'][1]:.0f} | "
              f"{s['seconds'][0]:.1f} ± {s['seconds'][1]:.1f} | "
              f"{s['worst_parameter_rel_error'][0]:.2g} ± {s['worst_parameter_rel_error'][1]:.2g} |")
    plot(runs)


def plot(runs: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for i, (method, rows) in enumerate(runs.items()):
        axes[0].scatter([i] * len(rows), [max(r["final_rms_mV"], 1e-9) for r in rows], alpha=0.6)
        axes[1].scatter([i] * len(rows), [r["simulations"] for r in rows], alpha=0.6)
    for ax, label in zip(axes, ("final RMS error (mV)", "simulations")):
        ax.set_xticks(range(len(runs)), list(runs))
        ax.set_yscale("log")
        ax.set_ylabel(label)
    fig.suptitle("BrainPy single-neuron protocol: HH, 4 parameters, 5 step currents")
    fig.savefig(RESULTS / "brainpy_protocol.png", dpi=120)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
