"""Per-step cost of a JAX HH (pycat) against Arbor's compiled HH, by number of CVs.

One cable cell, HH on every CV, one thread, dt = 0.025 ms. Each configuration is warmed
up (JIT compilation, first steps) and then timed over a fixed number of steps; the
compiled and JAX runs are interleaved and the fastest of several repeats is kept, which
suppresses noise from other processes. Results go to benchmarks/results/pycat.json.

    python benchmarks/pycat_overhead.py [--repeats 5] [--sizes 1 100 1000 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import arbor
from arbor import units as U

import pycat
from pycat.channels import hh
from pycat.jaxmech import jax_mechanism

DT = 0.025
WARMUP_MS = 5.0
RESULTS = Path(__file__).resolve().parent / "results" / "pycat.json"


class _Recipe(arbor.recipe):
    def __init__(self, mech: str, n_cv: int, catalogue: arbor.catalogue):
        super().__init__()
        self.mech, self.n_cv = mech, n_cv
        self.props = arbor.neuron_cable_properties()
        self.props.catalogue = catalogue

    def num_cells(self) -> int:
        return 1

    def cell_kind(self, gid):
        return arbor.cell_kind.cable

    def global_properties(self, kind):
        return self.props

    def cell_description(self, gid):
        tree = arbor.segment_tree()
        tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 1), arbor.mpoint(1000, 0, 0, 1), tag=1)
        decor = arbor.decor().set_property(Vm=-65 * U.mV)
        decor.paint("(all)", arbor.density(self.mech))
        decor.place("(location 0 0)", arbor.i_clamp(1 * U.ms, 1e9 * U.ms, 0.05 * U.nA))
        return arbor.cable_cell(arbor.morphology(tree), decor, arbor.label_dict(),
                                arbor.cv_policy_fixed_per_branch(self.n_cv))


def steps_for(n_cv: int) -> int:
    """Enough steps for ~0.3 s of compiled work at large sizes, capped for small ones."""
    return int(min(4000, max(200, 4e6 / max(n_cv, 1))))


def time_per_step(mech: str, n_cv: int, catalogue: arbor.catalogue, steps: int) -> float:
    """Seconds per step after a warm-up, one thread."""
    ctx = arbor.context(threads=1)
    sim = arbor.simulation(_Recipe(mech, n_cv, catalogue), ctx)
    sim.run(WARMUP_MS * U.ms, DT * U.ms)
    t0 = time.perf_counter()
    sim.run((WARMUP_MS + steps * DT) * U.ms, DT * U.ms)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000, 1024, 10000])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    cat = pycat.catalogue([jax_mechanism(hh())], base=arbor.default_catalogue())
    rows = []
    for n in args.sizes:
        steps = steps_for(n)
        best = {"hh": float("inf"), "jaxhh": float("inf")}
        for _ in range(args.repeats):
            for mech in best:
                best[mech] = min(best[mech], time_per_step(mech, n, cat, steps))
        row = {
            "n_cv": n,
            "steps_timed": steps,
            "compiled_hh_us_per_step": best["hh"] * 1e6,
            "jax_hh_us_per_step": best["jaxhh"] * 1e6,
            "ratio": best["jaxhh"] / best["hh"],
            "overhead_us_per_step": (best["jaxhh"] - best["hh"]) * 1e6,
        }
        rows.append(row)
        print(f"{n:6d} CVs: compiled {row['compiled_hh_us_per_step']:9.1f} µs/step, "
              f"JAX {row['jax_hh_us_per_step']:9.1f} µs/step, ratio {row['ratio']:6.2f}, "
              f"overhead {row['overhead_us_per_step']:8.1f} µs/step", flush=True)

    import jax
    result = {
        "what": "per-step wall time, JAX HH via pycat vs Arbor's built-in (SIMD-compiled) hh; "
                "one cable cell, HH on all CVs, one thread, dt 0.025 ms; best of repeats",
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "platform": platform.platform()},
        "versions": {"arbor": arbor.__version__, "jax": jax.__version__},
        "reference": "the original bridge paid ~1.7x at 1024 CVs",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
