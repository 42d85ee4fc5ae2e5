"""Cost of computing gradients inside Arbor, as a ratio to the plain simulation.

The shared benchmark cell, the HH axon with its soma (soma 1 CV 20 µm × r 10 µm, 10 axon CVs
40 µm × r 0.5 µm; the ion carrier runs on its constant-radius equivalent), 1000 ms at
dt 0.025 ms, 0.2 nA into the soma from 10 to 960 ms; and the HH cable (500 µm × r 0.5 µm,
50 CVs, 0.1 nA at x = 0 from 10 to 960 ms). Every configuration of a cell is timed in one
run, interleaved (one `simulation.run` of each per round, construction excluded), and
reported as the median over the rounds and as a ratio to Arbor's built-in `hh` (SIMD build).

Configurations, to show what each lever buys (issue #13):
- the project's hh.mod without gradients (K = 0), built scalar and SIMD;
- for K = 1, 3, 10, 12: the hub design built scalar (the design before the levers), the hub
  design built SIMD, fused mechanisms built scalar, and fused + SIMD — what `simulate` uses;
- K = 3 fused + SIMD with a 2-thread context (single-cell runs now use 1 thread);
- for every K, the exact carrier (one mechanism, u_k solved on the CV tree, no ions; SIMD),
  on the original geometry: the default (`gradient_runs[].ratio_to_builtin`);
- on the HH cable, the exact carrier and fused + SIMD ion carrier for every K
  (`hh_cable.gradient_runs`).
Jaxley's reverse-mode gradient of the same loss on the same cell is timed in the same run when
jaxley is installed (`make bench`).

Writes benchmarks/results/overhead.json (`gradient_runs[].ratio_to_builtin`: the default
configuration, the exact carrier, SIMD, 1 thread; `ratio_fused_simd`: the ion carrier).
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

from gradgen.checks.cells import CABLE_SITES, HH_AXON_SITES, cable_cell_spec, hh_axon_spec  # noqa: E402
from gradgen.convert import convert  # noqa: E402
from gradgen.params import ParamRef  # noqa: E402
from gradgen.targets.arbor.model import GradientModel, SingleCellRun  # noqa: E402

T_END, DT, ROUNDS = 1000.0, 0.025, 7
THIRDS = {"r0": "(cable 0 0 0.3333333333333333)", "r1": "(cable 0 0.3333333333333333 0.6666666666666666)",
          "r2": "(cable 0 0.6666666666666666 1)"}
PARAM_SETS = {
    1: ["hh.gnabar"],
    3: ["hh.gnabar", "hh.gkbar", "hh.gl"],
    10: [f"hh.{p}@{r}" for p in ("gnabar", "gkbar", "gl") for r in THIRDS] + ["hh.el"],
    12: [f"hh.{p}@{r}" for p in ("gnabar", "gkbar", "gl", "el") for r in THIRDS],
}
DESIGNS = {  # name -> (fusion, vectorize, carrier)
    "hub_scalar": (False, False, "ion"),
    "hub_simd": (False, True, "ion"),
    "fused_scalar": (True, False, "ion"),
    "fused_simd": (True, True, "ion"),
    "exact_simd": (True, True, "exact"),  # u_k solved on the CV tree (targets.arbor.exact_carrier)
}
SITES = HH_AXON_SITES
CABLE_DESIGNS = ("fused_simd", "exact_simd")


def builtin_hh_run(spec, threads: int = 1, sites: list[str] = SITES) -> SingleCellRun:
    decor = spec.decor.to_arbor([("(all)", arbor.density("hh"))])
    return SingleCellRun(spec.build(decor), arbor.neuron_cable_properties(), sites, 0, threads=threads)


def gradient_run(directory: Path, spec, fusion: bool, vectorize: bool, carrier: str = "ion",
                 gradients: bool = True, threads: int = 1, sites: list[str] = SITES) -> SingleCellRun:
    model = GradientModel.load(directory, carrier=carrier)
    model.fusion, model.vectorize = fusion, vectorize
    run = model.simulation(spec, sites, gradients=gradients)
    if threads != 1:
        run = SingleCellRun(run._cells[0], run._props, run.sites, run.n_params, threads=threads, hubs=run.hubs)
    return run


def interleaved(runs: dict[str, SingleCellRun]) -> dict[str, float]:
    """Median seconds of one 1000 ms run of each, timed round-robin."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():
        run.run(50.0, DT)  # warm up: load libraries, allocate
    for _ in range(ROUNDS):
        for name, run in runs.items():
            start = time.perf_counter()
            run.run(T_END, DT, sample_dt=1.0)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def hh_cable(dirs: dict[int, Path]) -> dict:
    """The HH cable's runs: built-in hh, then each K with the exact and the ion carrier."""
    spec = cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=T_END - 40.0, labels=THIRDS)
    runs = {"builtin_hh": builtin_hh_run(spec, sites=CABLE_SITES),
            "hh_mod_simd": gradient_run(dirs[1], spec, False, True, gradients=False, sites=CABLE_SITES)}
    for k, directory in dirs.items():
        for design in CABLE_DESIGNS:
            fusion, vectorize, carrier = DESIGNS[design]
            runs[f"K{k}_{design}"] = gradient_run(directory, spec, fusion, vectorize, carrier, sites=CABLE_SITES)
    assert all(runs[f"K{k}_exact_simd"].exact for k in dirs)
    times = interleaved(runs)
    plain = times["builtin_hh"]
    return {"cell": "HH cable 500 um x r 0.5 um, 50 CVs", "seconds": times, "builtin_hh_s": plain,
            "gradient_runs": [{"K": 0, "ratio_to_builtin": times["hh_mod_simd"] / plain}]
            + [{"K": k, "carrier": "exact", "ratio_to_builtin": times[f"K{k}_exact_simd"] / plain,
                "ratio_fused_simd": times[f"K{k}_fused_simd"] / plain} for k in dirs]}


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
                     "t_end_ms": T_END, "dt_ms": DT, "rounds": ROUNDS, "threads": 1,
                     "machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {}
        for k, names in PARAM_SETS.items():
            dirs[k] = Path(tmp) / f"k{k}"
            convert([ROOT / "mechanisms" / "hh.mod"], dirs[k], [ParamRef.parse(n) for n in names])
        start = time.perf_counter()
        geometry = GradientModel.load(dirs[1]).geometry(spec)  # once per cell spec: transform + check
        results["geometry_setup_s"] = time.perf_counter() - start
        results["geometry_max_abs_dV_mV"] = geometry.max_abs_dV_mV
        runs = {"builtin_hh": builtin_hh_run(spec),
                "hh_mod_scalar": gradient_run(dirs[1], spec, False, False, gradients=False),
                "hh_mod_simd": gradient_run(dirs[1], spec, False, True, gradients=False)}
        for k, directory in dirs.items():
            for design, (fusion, vectorize, carrier) in DESIGNS.items():
                runs[f"K{k}_{design}"] = gradient_run(directory, spec, fusion, vectorize, carrier)
        runs["K3_fused_simd_2threads"] = gradient_run(dirs[3], spec, True, True, threads=2)
        assert all(h.startswith("gradf_") for h in runs["K3_fused_simd"].hubs)  # fusion applied
        assert all(runs[f"K{k}_exact_simd"].exact for k in PARAM_SETS)  # the exact carrier ran
        times = interleaved(runs)
        results["hh_cable"] = hh_cable(dirs)
    plain = times["builtin_hh"]
    results["seconds"] = times
    results["ratio_to_builtin"] = {name: t / plain for name, t in times.items()}
    results["builtin_hh_s"] = plain
    results["gradient_runs"] = [{"K": 0, "seconds": times["hh_mod_simd"],
                                 "ratio_to_builtin": times["hh_mod_simd"] / plain}]
    results["gradient_runs"] += [{"K": k, "carrier": "exact", "seconds": times[f"K{k}_exact_simd"],
                                  "ratio_to_builtin": times[f"K{k}_exact_simd"] / plain,
                                  "ratio_hub_scalar": times[f"K{k}_hub_scalar"] / plain,
                                  "ratio_hub_simd": times[f"K{k}_hub_simd"] / plain,
                                  "ratio_fused_scalar": times[f"K{k}_fused_scalar"] / plain,
                                  "ratio_fused_simd": times[f"K{k}_fused_simd"] / plain}
                                 for k in PARAM_SETS]
    results["jaxley_reverse_gradient"] = jaxley_gradient()
    out = ROOT / "benchmarks" / "results" / "overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "gradient_runs"}, indent=2))
    return results


if __name__ == "__main__":
    main()
