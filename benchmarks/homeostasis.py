"""Online rate homeostasis: does the rate settle, how fast, and what does learning cost?

An HH cell in Ornstein–Uhlenbeck noise starts far above its target rate and learns gnabar,
gkbar and the input gain while Arbor simulates (gradgen.homeostasis.demo: a single-CV cell
and a 5-CV cable), for SECONDS of simulated time at DT. Reports per case the target and
final counted rate (last half of the run), the settling time (every later 50-s window within
±25 % of the target), how much the parameters still move over the last half, α, λ, the stability bound α_max of the linearised passive loop at the
same λ (gradgen.homeostasis.stability; for a rate target the bound is the passive-case
reference, the rate loop itself has no resting point), and the wall-time ratio of the
homeostatic run to a plain run of the original mechanisms (both one `simulation.run`,
measured one after the other in this process).

Writes benchmarks/results/homeostasis.json.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import arbor

from gradgen.homeostasis.demo import CASES, PARAMS, config, run
from gradgen.homeostasis.stability import passive_report

SECONDS, DT = 1000.0, 0.05
OUT = Path(__file__).resolve().parent / "results" / "homeostasis.json"


def main() -> None:
    cfg = config()
    # Passive reference loop at the same λ: pas g 0.001 S/cm², e −70 mV, held at −60 mV,
    # learning g towards −65 mV (as tests/test_homeostasis.py).
    passive = passive_report(0.01, 1.0, -70.0, -65.0, 0.001, 0.0, cfg.lam, DT)
    cases = {}
    for case in CASES.values():
        start = time.perf_counter()
        result = run(case, cfg, SECONDS * 1000.0, DT)
        tr = result.traces
        late = tr.theta[:, tr.t >= tr.t[-1] / 2]
        cases[case.name] = {
            "n_cv": case.n_cv,
            "target_rate_hz": result.target_hz,
            "start_rate_hz": tr.spike_rate(0.0, 10_000.0),
            "final_rate_hz": result.final_rate_hz,
            "settling_time_s": result.settling_time_s,
            "alpha": cfg.alpha,
            "lambda": cfg.lam,
            "alpha_max": passive.alpha_max,
            "alpha_max_note": "passive reference loop (leak g towards -65 mV): oscillation onset; "
                              f"time-step divergence at {passive.alpha_divergence:.3g}; study bound "
                              f"lambda^2 + lambda g/C = {passive.study_bound:.3g}",
            "params": PARAMS,
            "theta_start": tr.theta[:, 0].tolist(),
            "theta_final": tr.theta[:, -1].tolist(),
            # parameters settled: (max − min)/mean of each θ over the last half of the run
            "theta_last_half_rel_range": ((late.max(axis=1) - late.min(axis=1)) / late.mean(axis=1)).tolist(),
            "homeostatic_wall_s": tr.wall_s,
            "plain_wall_s": result.plain_wall_s,
            "wall_time_ratio": tr.wall_s / result.plain_wall_s,
            "total_s": time.perf_counter() - start,
        }
        print(case.name, json.dumps(cases[case.name], indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "simulated_s": SECONDS, "dt_ms": DT, "tau_rate_ms": cfg.target.tau_rate,
        "arbor": arbor.__version__, "machine": platform.machine(), "cases": cases}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
