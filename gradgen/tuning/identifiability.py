"""What the data determine: singular values of the residual Jacobian and the parameter
combinations they leave free.

With r in mV/√samples (:mod:`gradgen.losses`), J = dr/dz maps a step δz to an RMS change of
V of ‖J·δz‖ mV. Its singular values s_i are therefore "mV RMS per unit z along the right
singular vector v_i" (per e-fold of the parameter with the ``log`` transform). A direction
whose s_i is tiny next to the largest hardly changes the trace: the data do not determine
that combination of parameters, and a Gauss–Newton step along it would be huge. The report
names those combinations by their largest coefficients.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

RELATIVE_THRESHOLD = 1e-3  # s_i / s_max below this: not determined (a 1000x weaker lever)


def identifiability(jacobian: np.ndarray, names: Sequence[str],
                    relative_threshold: float = RELATIVE_THRESHOLD) -> dict:
    """Singular values of J and the right singular vectors of the small ones, by name."""
    _, s, vt = np.linalg.svd(jacobian, full_matrices=False)
    relative = s / s[0] if s[0] > 0 else np.zeros_like(s)
    free = []
    for i in np.flatnonzero(relative < relative_threshold):
        v = vt[i] * np.sign(vt[i][np.argmax(np.abs(vt[i]))])  # largest coefficient positive
        order = np.argsort(-np.abs(v))
        free.append({"singular_value": float(s[i]), "relative": float(relative[i]),
                     "combination": {names[j]: float(v[j]) for j in order if abs(v[j]) >= 0.1}})
    return {"singular_values": [float(x) for x in s], "relative": [float(x) for x in relative],
            "relative_threshold": relative_threshold,
            "identified": int(np.count_nonzero(relative >= relative_threshold)),
            "parameters": len(names), "undetermined": free,
            "right_singular_vectors": [[float(x) for x in row] for row in vt], "names": list(names)}


def format_report(report: dict, label: str) -> str:
    """A few lines for the terminal."""
    s = report["singular_values"]
    lines = [f"{label}: J's singular values {s[0]:.3g} … {s[-1]:.3g} mV per unit z; "
             f"{report['identified']} of {report['parameters']} directions identified "
             f"(s/s_max ≥ {report['relative_threshold']:g})"]
    for free in report["undetermined"]:
        combo = " ".join(f"{c:+.2f}·{n}" for n, c in free["combination"].items())
        lines.append(f"  not determined (s/s_max {free['relative']:.1e}): {combo}")
    return "\n".join(lines)


def plot_identifiability(reports: dict[str, dict], path: Path, title: str = "") -> None:
    """Singular values (relative) for each report, and |V| of the last report by parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = list(reports.values())[-1]
    names = last["names"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    for label, report in reports.items():
        axes[0].semilogy(range(1, len(report["relative"]) + 1), report["relative"], "o-", label=label)
    axes[0].axhline(last["relative_threshold"], color="grey", ls=":", lw=0.8)
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_xlabel("singular value index")
    axes[0].set_ylabel("s_i / s_max")
    axes[0].legend()
    axes[0].grid(alpha=0.3, which="both")
    image = axes[1].imshow(np.abs(np.array(last["right_singular_vectors"])), cmap="viridis",
                           vmin=0, vmax=1, aspect="auto")
    axes[1].set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    axes[1].set_yticks(range(len(names)),
                       [f"{i + 1}: {r:.0e}" for i, r in enumerate(last["relative"])], fontsize=7)
    axes[1].set_ylabel("direction (s_i / s_max)")
    axes[1].set_title(f"|right singular vectors| ({list(reports)[-1]})", fontsize=9)
    fig.colorbar(image, ax=axes[1])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
