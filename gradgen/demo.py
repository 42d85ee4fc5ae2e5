"""`gradgen demo`: an HH cable computes its own gradients; compare them with finite differences.

The cable (500 µm, radius 0.5 µm, 50 CVs) gets a current step at x = 0. The loss is the
mean squared difference of V at both ends from a target made with the parameters / 1.1.
The figure shows V and dV/dgnabar along the cable over time.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from gradgen.check import cable_cell_spec, finite_difference
from gradgen.convert import convert
from gradgen.params import ParamRef
from gradgen.runtime import GradientModel, mse_gradient

MECHANISMS = Path(__file__).resolve().parent.parent / "mechanisms"
PARAMS = ["hh.gnabar", "hh.gkbar", "hh.gl"]
T_END, DT = 100.0, 0.01
ENDS = ["(location 0 0)", "(location 0 1)"]


def run_demo(output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        convert([MECHANISMS / "hh.mod"], Path(tmp) / "hh", [ParamRef.parse(p) for p in PARAMS])
        model = GradientModel.load(Path(tmp) / "hh")
        spec = cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=T_END - 10)
        print(f"HH cable, 50 CVs, {T_END:g} ms at dt {DT} ms; building the catalogues ...")
        target_values = {p: model.defaults[p] / 1.1 for p in PARAMS}
        target = model.simulate(spec, ENDS, T_END, DT, gradients=False, values=target_values).v
        start = time.perf_counter()
        traces = model.simulate(spec, ENDS, T_END, DT)
        seconds = time.perf_counter() - start
        loss, grad = mse_gradient(traces, target)
        print(f"loss {loss:.4g} mV²; gradient system run {seconds:.2f} s\n")
        print(f"{'parameter':<12} {'value':>9} {'dL/dθ (gradgen)':>17} {'dL/dθ (FD)':>14} {'rel. diff':>10}")
        for k, name in enumerate(PARAMS):
            fd = finite_difference(model, spec, ENDS, T_END, DT, name)
            fd_grad = float(np.mean(2 * (traces.v - target) * fd.dv))
            rel = abs(grad[k] - fd_grad) / abs(fd_grad)
            print(f"{name:<12} {model.defaults[name]:>9.4g} {grad[k]:>17.6g} {fd_grad:>14.6g} {rel:>10.2e}")
        centres = [f"(location 0 {(i + 0.5) / 50!r})" for i in range(50)]
        field = model.simulate(spec, centres, T_END, DT, sample_dt=0.1)
    path = output / "hh_cable_gradients.png"
    plot_cable(field, path)
    print(f"\nfigure: {path.resolve()}")
    return path


def plot_cable(traces, path: Path) -> None:
    """V(x, t) and dV/dgnabar(x, t) as images, like Fig. 1B/C of the gradient-diffusion paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    extent = (traces.t[0], traces.t[-1], 500.0, 0.0)
    im = axes[0].imshow(traces.v, aspect="auto", extent=extent, cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="V (mV)")
    sens = traces.dv[:, 0, :]
    limit = np.max(np.abs(sens))
    im = axes[1].imshow(sens, aspect="auto", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(im, ax=axes[1], label="dV/dgnabar (mV per S/cm²)")
    axes[0].set_ylabel("x (µm)")
    axes[1].set_ylabel("x (µm)")
    axes[1].set_xlabel("t (ms)")
    axes[0].set_title("HH cable: voltage and its sensitivity, computed inside Arbor")
    fig.savefig(path, dpi=120)
    plt.close(fig)
