"""Memory of a gradient run against simulated time (issue #13: "memory flat in simulated time").

Forward sensitivities carry dV/dθ along with the simulation, so a gradient run holds the
current step only; reverse mode (Jaxley) has to keep (checkpoints of) the trajectory. Each
measurement runs in a fresh process: the HH axon with its soma (the benchmark cell of
benchmarks/overhead.py), K = 10, dt 0.025 ms, samples every 1 ms, and the peak RSS increase
of one `simulation.run` over the RSS just before it (VmHWM reset, as in
benchmarks/jaxley_reference.py). Jaxley's gradient of the same loss on the same cell is
measured the same way when jaxley is installed (`make bench`).

gradgen is measured twice: sampled every 1 ms (what grows is the samples Arbor keeps, about
1 kB per sample time for 22 probes) and with 250 sample times whatever the duration (what
the simulation itself holds), beside Arbor's built-in hh without gradients sampled the same
way: Arbor itself keeps about 40 bytes per time step (1.5 MB per simulated second at
dt 0.025, measured), and a gradient run adds nothing to that.

Writes benchmarks/results/memory.json: per method and t_end, the peak RSS increase in MB, and
the slope in MB per simulated second fitted over the durations.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

DT = 0.025
T_ENDS = (250.0, 1000.0, 4000.0)
JAXLEY_T_ENDS = (250.0, 1000.0)  # longer compiles take minutes
K10 = [f"hh.{p}@{r}" for p in ("gnabar", "gkbar", "gl") for r in ("r0", "r1", "r2")] + ["hh.el"]


def gradgen_peak_mb(t_end: float, samples: int | None = None) -> dict:
    """Peak RSS increase of one K = 10 gradient run of ``t_end`` ms (in this process), sampled
    every 1 ms or, with ``samples``, at that many evenly spaced times."""
    from jaxley_reference import peak_rss_delta_mb  # pure /proc reading; no jax needed
    from overhead import THIRDS

    from gradgen.checks.cells import HH_AXON_SITES, hh_axon_spec
    from gradgen.convert import convert
    from gradgen.params import ParamRef
    from gradgen.targets.arbor.model import GradientModel

    spec = hh_axon_spec(t_end, labels=THIRDS)
    with tempfile.TemporaryDirectory() as tmp:
        convert([ROOT / "mechanisms" / "hh.mod"], Path(tmp), [ParamRef.parse(n) for n in K10])
        run = GradientModel.load(tmp).simulation(spec, HH_AXON_SITES)
        run.run(10.0, DT)  # load the catalogue, allocate the simulation
        out = {}
        sample_dt = t_end / samples if samples else 1.0
        peak = peak_rss_delta_mb(lambda: out.setdefault("traces", run.run(t_end, DT, sample_dt=sample_dt)))
    return {"t_end_ms": t_end, "sample_dt_ms": sample_dt, "peak_rss_delta_mb": peak,
            "sample_mb": out["traces"].dv.nbytes / 2**20 if out["traces"].dv is not None else 0.0}


def plain_peak_mb(t_end: float, samples: int = 250) -> dict:
    """The same for Arbor's built-in hh without gradients: Arbor's own growth with the steps."""
    from jaxley_reference import peak_rss_delta_mb
    from overhead import THIRDS, builtin_hh_run

    from gradgen.checks.cells import hh_axon_spec

    run = builtin_hh_run(hh_axon_spec(t_end, labels=THIRDS))
    run.run(10.0, DT)
    sample_dt = t_end / samples
    return {"t_end_ms": t_end, "sample_dt_ms": sample_dt,
            "peak_rss_delta_mb": peak_rss_delta_mb(lambda: run.run(t_end, DT, sample_dt=sample_dt))}


def jaxley_peak_mb(t_end: float) -> dict:
    import jaxley_reference

    result = jaxley_reference.loss_and_grad("hh_axon", t_end, dt=DT, repeats=1)
    return {"t_end_ms": t_end, "peak_rss_delta_mb": result["peak_rss_delta_mb"]}


def in_subprocess(method: str, t_end: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", method, str(t_end)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"t_end_ms": t_end, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def slope_mb_per_s(points: list[dict]) -> float | None:
    ok = [p for p in points if "peak_rss_delta_mb" in p]
    if len(ok) < 2:
        return None
    t = np.array([p["t_end_ms"] / 1000.0 for p in ok])
    return float(np.polyfit(t, [p["peak_rss_delta_mb"] for p in ok], 1)[0])


def main() -> dict:
    results: dict = {"cell": "HH axon with soma (benchmarks/overhead.py), K = 10", "dt_ms": DT,
                     "gradgen": [in_subprocess("gradgen", t) for t in T_ENDS],
                     "gradgen_250_samples": [in_subprocess("gradgen_250_samples", t) for t in T_ENDS],
                     "arbor_builtin_hh_250_samples": [in_subprocess("plain", t) for t in T_ENDS]}
    try:
        import jaxley  # noqa: F401
        results["jaxley"] = [in_subprocess("jaxley", t) for t in JAXLEY_T_ENDS]
    except ImportError:
        results["jaxley"] = {"available": False, "reason": "jaxley is not installed (make bench)"}
    results["slope_mb_per_simulated_s"] = {
        name: slope_mb_per_s(points) for name, points in results.items() if isinstance(points, list)}
    out = ROOT / "benchmarks" / "results" / "memory.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        method, t_end = sys.argv[2], float(sys.argv[3])
        measure = {"gradgen": gradgen_peak_mb, "jaxley": jaxley_peak_mb, "plain": plain_peak_mb,
                   "gradgen_250_samples": lambda t: gradgen_peak_mb(t, samples=250)}[method]
        print(json.dumps(measure(t_end)))
    else:
        main()
