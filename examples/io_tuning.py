"""The inferior-olive example end to end.

1. The IO model (mechanisms/io/) on the bundled IO-like morphology at its default
   parameters: a figure of its subthreshold oscillations (soma and a distal dendrite).
2. Tuning its 12 conductances with Adam to a target made by changing 7 of them
   (examples/io.toml), writing results.json, loss.png and traces.png.

    python examples/io_tuning.py [-o io-example] [--iterations 300] [--t-end 1000]

Interrupt and rerun to resume from the checkpoint in the output directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import arbor
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gradgen.errors import GradgenError  # noqa: E402
from gradgen.outputs import OutputDir  # noqa: E402
from gradgen.tuning.config import load_config  # noqa: E402
from gradgen.tuning.run import cell_spec, run_config, setup  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def distal_dendrite(spec) -> str:
    """A point 90 % along the first dendritic tree, as one location."""
    cell = arbor.cable_cell(spec.morphology, arbor.decor(), spec.labels)
    first = cell.locations('(on-components 0.9 (region "dend"))')[0]
    return f"(location {first.branch} {first.pos!r})"


def plot_oscillations(config, out: OutputDir, t_end: float = 2000.0) -> Path:
    """Soma and distal-dendrite V of the untuned model."""
    model = setup(dataclasses.replace(config, t_end=10.0), out.path / "oscillation-model").model
    spec = cell_spec(config)
    sites = [config.probe, distal_dendrite(spec)]
    traces = model.simulate(spec, sites, t_end, config.dt, gradients=False, sample_dt=0.5)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for v, label in zip(traces.v, ("soma", "distal dendrite")):
        ax.plot(traces.t, v, label=label, lw=1.0)
    ax.set_xlabel("t (ms)")
    ax.set_ylabel("V (mV)")
    ax.set_title("IO model, default parameters, bundled morphology: subthreshold oscillations")
    ax.legend(loc="upper right")
    fig.tight_layout()
    with out.replacing("oscillations.png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return out.path / "oscillations.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="io-example", type=Path)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--t-end", type=float, default=1000.0, help="simulated ms per run")
    args = parser.parse_args()
    out = OutputDir.claim(args.output)
    out.mark()  # before the model folders are written into it
    config = load_config(ROOT / "examples" / "io.toml")
    print(f"wrote {plot_oscillations(config, out)}")
    config = dataclasses.replace(config, iterations=args.iterations, t_end=args.t_end,
                                 output=out.path / "adam")
    results = run_config(config)
    print(f"RMS error {results['start_rms_mV']:.3f} -> {results['final_rms_mV']:.3f} mV after "
          f"{results['simulations']} gradient-system runs ({results['seconds']:.0f} s)")
    for p in results["parameters"]:
        print(f"  {p['name']:<16} start {p['start']:<10.4g} final {p['final']:<10.4g} target {p['target']:.4g}")
    print(f"figures and results.json in {config.output}")


if __name__ == "__main__":
    try:
        main()
    except GradgenError as error:
        print(f"io_tuning: error: {error}", file=sys.stderr)
        sys.exit(2)
