"""Losses as pure functions of sampled traces, and their gradients by the chain rule.

A gradient run gives V(t) and u_k(t) = dV(t)/dθ_k at the probe sites; any loss L(V) then
has dL/dθ_k = Σ_t ∂L/∂V(t) · u_k(t). Nothing here simulates.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gradgen.errors import GradgenError

if TYPE_CHECKING:
    from gradgen.targets.arbor.model import Traces


def mse_gradient(traces: Traces, target: np.ndarray) -> tuple[float, np.ndarray]:
    """L = mean((V − V*)²) over sites and samples, and dL/dθ by the chain rule."""
    if traces.dv is None:
        raise GradgenError("these traces carry no gradients")
    residual = traces.v - target
    loss = float(np.mean(residual**2))
    grad = 2.0 * np.einsum("st,skt->k", residual, traces.dv) / residual.size
    return loss, grad
