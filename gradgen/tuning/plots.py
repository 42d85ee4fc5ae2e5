"""Figures of a tuning run: loss curves and voltage traces before and after (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gradgen.extras import require
from gradgen.tuning.optim import History


def _pyplot():
    matplotlib = require("matplotlib", "plot", "drawing figures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(histories: dict[str, History], path: Path, title: str = "") -> None:
    """Best RMS error so far against simulations and against wall time, one line per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for label, history in histories.items():
        sims = [r["simulations"] for r in history.rows]
        secs = [r["seconds"] for r in history.rows]
        rms = [r["best_rms_mV"] for r in history.rows]
        axes[0].plot(sims, rms, label=label)
        axes[1].plot(secs, rms, label=label)
    for ax, xlabel in zip(axes, ("simulations", "wall time (s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("best RMS error of V (mV)")
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_traces(t: np.ndarray, traces: dict[str, np.ndarray], path: Path, title: str = "") -> None:
    """Voltage traces on one axis (e.g. target, before, after)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    styles = {"target": dict(color="black", lw=2.0, alpha=0.5)}
    for label, v in traces.items():
        ax.plot(t, v, label=label, **styles.get(label, dict(lw=1.0)))
    ax.set_xlabel("t (ms)")
    ax.set_ylabel("V (mV)")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
