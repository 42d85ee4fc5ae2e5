"""Cost of computing gradients inside Arbor, as a ratio to the plain simulation.

The shared benchmark cell, the HH axon with its soma (soma 1 CV 20 µm × r 10 µm, 10 axon CVs
40 µm × r 0.5 µm; the gradient cell runs on its constant-radius equivalent), 1000 ms at
dt 0.025 ms, 0.2 nA into the soma from 10 to 960 ms. Times are medians of repeated `simulation.run` calls (construction excluded), all taken in
this one run. Baselines: Arbor's built-in `hh` (SIMD build) and the project's hh.mod built
scalar like the gradient mechanisms (K = 0). Jaxley's reverse-mode gradient of the same
loss on the same cell is timed in the same run when jaxley is installed (`make bench`).

Writes benchmarks/results/overhead.json.
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import arbor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gradgen.checks.cells import HH_AXON_SITES, hh_axon_spec  # noqa: E402
from gradgen.convert import convert  # noqa: E402
from gradgen.params import ParamRef  # noqa: E402
from gradgen.targets.arbor.model import GradientModel, SingleCellRun  # noqa: E402

T_END, DT, REPEATS = 1000.0, 0.025, 5
THIRDS = {"r0": "(cable 0 0 0.3333333333333333)", "r1": "(cable 0 0.3333333333333333 0.6666666666666666)",
          "r2": "(cable 0 0.6666666666666666 1)"}
PARAM_SETS = {
    1: ["hh.gnabar"],
    3: ["hh.gnabar", "hh.gkbar", "hh.gl"],
    10: [f"hh.{p}@{r}" for p in ("gnabar", "gkbar", "gl") for r in THIRDS] + ["hh.el"],
}
SITES = HH_AXON_SITES


def time_run(run: SingleCellRun) -> float:
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run.run(T_END, DT, sample_dt=1.0)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def builtin_hh_run(spec) -> SingleCellRun:
    decor = spec.decor.to_arbor([("(all)", arbor.density("hh"))])
    cell = spec.build(decor)
    return SingleCellRun(cell, arbor.neuron_cable_properties(), SITES, 0)


def jaxley_gradient() -> dict:
    try:
        import jaxley_reference
    except ImportError as error:
        return {"available": False, "reason": str(error)}
    result = jaxley_reference.loss_and_grad("hh_axon", T_END, dt=DT)
    return {"available": True, **{k: v for k, v in result.items() if k != "grad"},
            "grad": {k: float(v) for k, v in result["grad"].items()}}


def main() -> dict:
    spec = hh_axon_spec(T_END, labels=THIRDS)
    results: dict = {"cell": "HH axon with soma (soma 20 um x r 10 um, 10 axon CVs 40 um x r 0.5 um)",
                     "t_end_ms": T_END,
                     "dt_ms": DT, "repeats": REPEATS, "machine": platform.processor() or platform.machine()}
    plain = time_run(builtin_hh_run(spec))
    results["builtin_hh_s"] = plain
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for k, names in PARAM_SETS.items():
            convert([ROOT / "mechanisms" / "hh.mod"], Path(tmp) / f"k{k}", [ParamRef.parse(n) for n in names])
            models[k] = GradientModel.load(Path(tmp) / f"k{k}")
        start = time.perf_counter()
        geometry = models[1].geometry(spec)  # once per cell spec: transform + 50 ms check
        results["geometry_setup_s"] = time.perf_counter() - start
        results["geometry_max_abs_dV_mV"] = geometry.max_abs_dV_mV
        scalar = time_run(models[1].simulation(spec, SITES, gradients=False))
        results["scalar_hh_s"] = scalar
        rows = [{"K": 0, "seconds": scalar, "ratio_to_builtin": scalar / plain}]
        for k, model in models.items():
            seconds = time_run(model.simulation(spec, SITES))
            rows.append({"K": k, "seconds": seconds, "ratio_to_builtin": seconds / plain,
                         "ratio_to_scalar": seconds / scalar})
        results["gradient_runs"] = rows
    results["jaxley_reverse_gradient"] = jaxley_gradient()
    out = ROOT / "benchmarks" / "results" / "overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
