"""Cost of the IO cell's gradient run (K = 12 conductances) relative to a plain IO run.

The tuning problem of examples/io.toml (1000 ms at dt 0.025, somatic V every 1 ms) on the
bundled morphology and on C4A (../shared/data/C4A.swc, when present). Timed like the
optimisers pay it (benchmarks/io_tuning.py's measure: one `simulate` call, construction
included), interleaved in rounds, medians:
- plain: the original mechanisms without gradients, built SIMD (the default) and scalar;
- gradient, hub design built scalar (before the issue #13 levers);
- gradient, hub design built SIMD;
- gradient, fused mechanisms built scalar;
- gradient, fused + SIMD (what `simulate` uses now);
- gradient, exact carrier (u_k solved on the CV tree inside one mechanism, no ions).
Times are the process's CPU time (``time.process_time``; one thread): the machine these
runs are made on is shared, and its wall clock counts the other users' processes too (load
average 6 on 2 cores while this was written); the wall-clock medians are kept beside them
(``wall_seconds``). Ratios are to the SIMD plain run. The acceptance of issue #13 (exact ≤ 4× plain) reads
``ratio_to_plain_simd.gradient_exact``: both runs timed the same way, construction included.
``run_only`` splits that for the plain SIMD run and the exact carrier: building the
simulation (cell, tree and paints, catalogue load: ``construction_s``) and one reset and run
of the built simulation (``run_s``), interleaved in rounds like the rest.
Writes benchmarks/results/io_cost.json.
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

from gradgen.tuning.config import load_config  # noqa: E402
from gradgen.tuning.run import setup  # noqa: E402

ROUNDS = 11
MORPHOLOGIES = {"bundled": ROOT / "morphologies" / "io_like.swc",
                "C4A": ROOT.parent / "shared" / "data" / "C4A.swc"}
DESIGNS = {"hub_scalar": (False, False, "ion"), "hub_simd": (False, True, "ion"),
           "fused_scalar": (True, False, "ion"), "fused_simd": (True, True, "ion"),
           "exact": (True, True, "exact")}


def measure(path: Path, work: Path) -> dict:
    config = dataclasses.replace(load_config(ROOT / "examples" / "io.toml"), morphology=path)
    problems = {}
    for name, (fusion, vectorize, carrier) in DESIGNS.items():
        problem = setup(config, work / name).problem
        problem.model.fusion, problem.model.vectorize, problem.model.carrier = fusion, vectorize, carrier
        problems[name] = problem
    z = problems["fused_simd"].param.z0()
    values = problems["fused_simd"].param.model_values(z)
    calls = {"plain_simd": lambda: problems["fused_simd"].trace(values),
             "plain_scalar": lambda: problems["hub_scalar"].trace(values)}
    calls.update({f"gradient_{name}": (lambda p=p: p.evaluate(z)) for name, p in problems.items()})
    for call in calls.values():
        call()  # builds every catalogue once, outside the timing
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    wall: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            start, start_wall = time.process_time(), time.perf_counter()
            call()
            seconds[name].append(time.process_time() - start)
            wall[name].append(time.perf_counter() - start_wall)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    median_wall = {name: statistics.median(s) for name, s in wall.items()}
    run_only = split_construction(problems["exact"], values)
    hubs = problems["fused_simd"].model.simulation(problems["fused_simd"].spec, problems["fused_simd"].sites).hubs
    return {"tuned_parameters": len(z), "model_parameters": len(problems["fused_simd"].model.params),
            "fused": hubs[0].startswith("gradf_"), "seconds": median,
            "exact_ran": problems["exact"].model.simulation(problems["exact"].spec, problems["exact"].sites).exact,
            "ratio_to_plain_simd": {name: t / median["plain_simd"] for name, t in median.items()},
            "wall_seconds": median_wall,
            "wall_ratio_to_plain_simd": {name: t / median_wall["plain_simd"] for name, t in median_wall.items()},
            "run_only": run_only}


def split_construction(problem, values: dict[str, float]) -> dict:
    """Median seconds to build the simulation and to reset and run it, plain (SIMD) and exact."""
    p = problem.protocol
    spec = p.spec(problem.spec)
    seconds: dict[str, list[float]] = {f"{kind}_{part}": [] for kind in ("plain", "exact")
                                       for part in ("construction_s", "run_s")}
    for _ in range(ROUNDS):
        for kind, gradients in (("plain", False), ("exact", True)):
            start = time.process_time()
            run = problem.model.simulation(spec, problem.sites, gradients, values)
            run.sim  # the arbor.simulation is built on first use
            built = time.process_time()
            run.run(p.t_end, p.dt, p.sample_dt)
            seconds[f"{kind}_construction_s"].append(built - start)
            seconds[f"{kind}_run_s"].append(time.process_time() - built)
    out = {name: statistics.median(s) for name, s in seconds.items()}
    out["run_ratio"] = out["exact_run_s"] / out["plain_run_s"]
    return out


def main() -> None:
    results: dict = {"rounds": ROUNDS, "machine": platform.processor() or platform.machine(),
                     "protocol": "examples/io.toml: 1000 ms, dt 0.025, construction included (run_only: split)",
                     "clock": "process CPU time (wall_seconds: wall clock)"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in MORPHOLOGIES.items():
            if path.exists():
                results[name] = {"K12": measure(path, Path(tmp) / name)}
                print(name, json.dumps(results[name], indent=2), flush=True)
    out = ROOT / "benchmarks" / "results" / "io_cost.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
