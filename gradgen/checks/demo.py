"""`gradgen demo`: an HH axon with its soma computes its own gradients; compare them with
finite differences.

The shared benchmark cell (soma 20 µm × r 10 µm as one CV, axon 10 CVs of 40 µm × r 0.5 µm,
hh everywhere) gets 0.2 nA into the soma. Its radius changes 20-fold, so the gradient cell
runs on the electrically identical constant-radius geometry (gradgen.targets.arbor.geometry.transform). The loss is
the mean squared difference of V at the soma and the axon tip from a target made with the
parameters / 1.1. The figure shows V and dV/dgnabar along the cell over time.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from gradgen.checks.cells import HH_AXON_SITES, hh_axon_spec
from gradgen.checks.fd import finite_difference
from gradgen.convert import convert
from gradgen.extras import require
from gradgen.losses import mse_gradient
from gradgen.outputs import OutputDir
from gradgen.params import ParamRef
from gradgen.resources import mechanisms_dir
from gradgen.targets.arbor.model import GradientModel

PARAMS = ["hh.gnabar", "hh.gkbar", "hh.gl"]
T_END, DT = 100.0, 0.01
ENDS = HH_AXON_SITES
#: CV centres along the cell (µm): the soma, then the axon
CENTRES_UM = [10.0] + [40.0 + 40.0 * k for k in range(10)]
LENGTH_UM = 420.0


def run_demo(output: Path) -> Path:
    out = OutputDir.claim(output)
    with tempfile.TemporaryDirectory() as tmp:
        convert([mechanisms_dir() / "hh.mod"], Path(tmp) / "hh", [ParamRef.parse(p) for p in PARAMS])
        model = GradientModel.load(Path(tmp) / "hh")
        spec = hh_axon_spec(T_END)
        print(f"HH axon with soma, 11 CVs, {T_END:g} ms at dt {DT} ms; building the catalogues ...")
        target_values = {p: model.defaults[p] / 1.1 for p in PARAMS}
        target = model.simulate(spec, ENDS, T_END, DT, gradients=False, values=target_values).v
        start = time.perf_counter()
        traces = model.simulate(spec, ENDS, T_END, DT)
        seconds = time.perf_counter() - start
        loss, grad = mse_gradient(traces, target)
        check = model.geometry(spec)
        print(f"constant-radius equivalent cell: max |V_transformed - V_original| = "
              f"{check.max_abs_dV_mV:.2g} mV")
        print(f"loss {loss:.4g} mV²; gradient system run {seconds:.2f} s\n")
        print(f"{'parameter':<12} {'value':>9} {'dL/dθ (gradgen)':>17} {'dL/dθ (FD)':>14} {'rel. diff':>10}")
        for k, name in enumerate(PARAMS):
            fd = finite_difference(model, spec, ENDS, T_END, DT, name)
            fd_grad = float(np.mean(2 * (traces.v - target) * fd.dv))
            rel = abs(grad[k] - fd_grad) / abs(fd_grad)
            print(f"{name:<12} {model.defaults[name]:>9.4g} {grad[k]:>17.6g} {fd_grad:>14.6g} {rel:>10.2e}")
        centres = [f"(location 0 {x / LENGTH_UM!r})" for x in CENTRES_UM]
        field = model.simulate(spec, centres, T_END, DT, sample_dt=0.1)
    path = out.path / "hh_axon_gradients.png"
    with out.replacing(path.name) as tmp:
        plot_cable(field, tmp)
    print(f"\nfigure: {path.resolve()}")
    return path


def plot_cable(traces, path: Path) -> None:
    """V(x, t) and dV/dgnabar(x, t) per CV (rows at the CV centres), like Fig. 1B/C of the
    gradient-diffusion paper."""
    matplotlib = require("matplotlib", "plot", "the demo's figure")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    im = axes[0].pcolormesh(traces.t, CENTRES_UM, traces.v, cmap="viridis", shading="nearest")
    fig.colorbar(im, ax=axes[0], label="V (mV)")
    sens = traces.dv[:, 0, :]
    limit = np.max(np.abs(sens))
    im = axes[1].pcolormesh(traces.t, CENTRES_UM, sens, cmap="RdBu_r", vmin=-limit, vmax=limit,
                            shading="nearest")
    fig.colorbar(im, ax=axes[1], label="dV/dgnabar (mV per S/cm²)")
    axes[0].set_ylabel("x (µm)")
    axes[1].set_ylabel("x (µm)")
    axes[1].set_xlabel("t (ms)")
    for ax in axes:
        ax.invert_yaxis()
    axes[0].set_title("HH axon with soma (x < 20 µm): voltage and its sensitivity, computed inside Arbor")
    fig.savefig(path, dpi=120)
    plt.close(fig)
