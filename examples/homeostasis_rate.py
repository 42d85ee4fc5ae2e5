"""Rate homeostasis: an HH neuron in noise learns gnabar, gkbar and its input gain online.

The cell starts far above the target rate; while Arbor simulates, each parameter follows
dθ/dt = −α·θ0²·(f − f*)·∂f/∂θ (f a smoothed spike rate, its gradient carried by the gradient
mechanisms) with forgetting λ. Runs a single-CV cell and a cable for T seconds each and
plots the counted rate, the parameters and the rate gradients over time.

    .venv/bin/python examples/homeostasis_rate.py [-o homeostasis-output] [--seconds 1000] [--dt 0.05]
"""
from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gradgen.errors import GradgenError  # noqa: E402
from gradgen.homeostasis.demo import CASES, PARAMS, config, run  # noqa: E402
from gradgen.outputs import OutputDir  # noqa: E402


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("-o", "--output", default="homeostasis-output")
    cli.add_argument("--seconds", type=float, default=1000.0, help="simulated time per cell (s)")
    cli.add_argument("--dt", type=float, default=0.05, help="time step (ms)")
    cli.add_argument("--target", type=float, default=3.0, help="target rate (Hz)")
    args = cli.parse_args()
    out = OutputDir.claim(args.output)
    cfg = config(target_hz=args.target)
    fig, axes = plt.subplots(3, 2, figsize=(11, 8), sharex=True)
    for col, case in enumerate(CASES.values()):
        result = run(case, cfg, args.seconds * 1000.0, args.dt)
        tr = result.traces
        t_s = tr.t / 1000.0
        centres, rates = tr.windowed_rate(10_000.0)
        ax = axes[0, col]
        ax.plot(centres / 1000.0, rates, ".", ms=3, color="0.5", label="counted (10 s windows)")
        ax.plot(t_s, tr.rate, lw=1, label=f"smoothed f (τ {cfg.target.tau_rate / 1000:g} s)")
        ax.axhline(result.target_hz, color="k", ls="--", lw=0.8, label="target")
        ax.set_ylabel("rate (Hz)")
        ax.set_title(f"{case.name}: {rates[0]:.1f} Hz → {result.final_rate_hz:.2f} Hz, "
                     f"settled at {result.settling_time_s} s")
        ax.legend(fontsize=7)
        ax = axes[1, col]
        for k, name in enumerate(PARAMS):
            ax.plot(t_s, tr.theta[k] / tr.theta[k, 0], label=name)
        ax.set_ylabel("θ / θ(0)")
        ax.legend(fontsize=7)
        ax = axes[2, col]
        for k, name in enumerate(PARAMS):
            ax.plot(t_s, tr.phi[k] * tr.theta[k, 0], lw=0.6, label=name)
        ax.set_yscale("symlog", linthresh=50.0)  # rare bursts (spike onsets near threshold) reach 1e4
        ax.set_ylabel("θ(0)·∂f/∂θ (Hz)")
        ax.set_xlabel("time (s)")
        ax.legend(fontsize=7)
        print(f"{case.name}: start {rates[0]:.1f} Hz, final {result.final_rate_hz:.2f} Hz "
              f"(target {result.target_hz:g}), settling {result.settling_time_s} s, theta {tr.theta[:, -1]}, "
              f"wall {tr.wall_s:.1f} s (plain {result.plain_wall_s:.1f} s)")
        with out.replacing(f"homeostasis_{case.name}.npz") as tmp:
            np.savez(tmp, t=tr.t, theta=tr.theta, rate=tr.rate, phi=tr.phi, spike_count=tr.spike_count)
    fig.tight_layout()
    with out.replacing("homeostasis_rate.png") as tmp:
        fig.savefig(tmp, dpi=110)
    print(f"wrote {out.path / 'homeostasis_rate.png'}")


if __name__ == "__main__":
    try:
        main()
    except GradgenError as error:
        print(f"homeostasis_rate: error: {error}", file=sys.stderr)
        sys.exit(2)
