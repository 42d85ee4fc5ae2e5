"""Losses as pure functions of sampled traces, and the chain rule to θ and z in one place.

A tuning problem compares simulated voltage with targets in *residual blocks*: each block
names a protocol (a stimulus set, simulated once per evaluation), a probe site of that
protocol's run, the target trace at the protocol's sample times, the samples the loss sees
(a mask: the time windows) and a weight. The least-squares loss of a list of blocks is

    L = ½ Σ_b w_b · mean_{t in mask_b} (V_b(t) − V*_b(t))² / W  =  ½ ‖r‖²,
    r = sqrt(w_b / (n_b·W)) · (V_b − V*_b)[mask_b]   (blocks stacked),   W = Σ_b w_b,

so sqrt(2L) is the weighted RMS error (mV) whatever the blocks, one block is the
½·mean-square loss of the single-trace problem, and ‖J·δz‖ is the (weighted) RMS change of
V that a step δz causes.

Everything that needs the chain rule goes through :func:`theta_gradient` (dL/dθ from dL/dV
and dV/dθ), :func:`theta_jacobian` (dr/dθ) and :func:`to_z` (θ → z through the
parameterisation's slopes, tied copies summed): Adam, CMA-ES and Levenberg–Marquardt see
the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence
from typing import Protocol as TypingProtocol

import numpy as np

from gradgen.errors import GradgenError

if TYPE_CHECKING:
    from gradgen.targets.arbor.model import Traces


@dataclass(frozen=True, eq=False)
class ResidualBlock:
    """One (protocol, probe, target, weight) term of the loss."""

    protocol: str  # name of the protocol whose run gives the trace
    probe: int  # index of the probe site in the problem's site list
    target: np.ndarray  # V* (mV) at the protocol's sample times
    mask: np.ndarray  # bool per sample: what the loss sees
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.target.shape != self.mask.shape:
            raise GradgenError(f"protocol '{self.protocol}', probe {self.probe}: the target has "
                               f"{self.target.size} samples, the protocol makes {self.mask.size}")
        if not self.weight > 0:
            raise GradgenError(f"protocol '{self.protocol}', probe {self.probe}: weight "
                               f"{self.weight} must be positive")



def _row_scales(blocks: Sequence[ResidualBlock]) -> list[float]:
    """sqrt(w_b / (n_b·W)): the factor from V − V* (mV) to each block's residuals."""
    total = sum(b.weight for b in blocks)
    return [float(np.sqrt(b.weight / (np.count_nonzero(b.mask) * total))) for b in blocks]


# Sampled runs: protocol name -> V[site, t] and dV/dθ[site, k, t] (k in gradient-model order).
Voltages = Mapping[str, np.ndarray]
Sensitivities = Mapping[str, np.ndarray]


def residuals(blocks: Sequence[ResidualBlock], v: Voltages) -> np.ndarray:
    """The stacked least-squares residuals r (see the module docstring)."""
    return np.concatenate([c * (v[b.protocol][b.probe] - b.target)[b.mask]
                           for b, c in zip(blocks, _row_scales(blocks))])


def residual_weights(blocks: Sequence[ResidualBlock]) -> np.ndarray:
    """sqrt(w_b / (n_b·W)) for every residual row (the factor from mV to r)."""
    return np.concatenate([np.full(np.count_nonzero(b.mask), c)
                           for b, c in zip(blocks, _row_scales(blocks))])


def theta_jacobian(blocks: Sequence[ResidualBlock], dv: Sensitivities) -> np.ndarray:
    """dr/dθ, shape [rows, K]: each block's dV/dθ at its selected samples, scaled like r."""
    return np.concatenate([c * dv[b.protocol][b.probe][:, b.mask].T
                           for b, c in zip(blocks, _row_scales(blocks))])


def theta_gradient(blocks: Sequence[ResidualBlock], dv: Sensitivities,
                   dloss_dv: Sequence[np.ndarray]) -> np.ndarray:
    """dL/dθ = Σ_b dV_b/dθ · dL/dV_b (dL/dV_b over the protocol's samples)."""
    return sum(dv[b.protocol][b.probe] @ g for b, g in zip(blocks, dloss_dv))


def to_z(slopes: np.ndarray, theta_gradient: np.ndarray | None = None,
         theta_jacobian: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(dL/dz, dr/dz) from the θ versions; ``slopes`` is dθ/dz [K_θ, K_z] of
    :meth:`gradgen.tuning.params.Parameterisation.slope_matrix` (a tied parameter's column
    has its slope in every copy's row, so its copies are summed)."""
    gradient = None if theta_gradient is None else slopes.T @ theta_gradient
    jacobian = None if theta_jacobian is None else theta_jacobian @ slopes
    return gradient, jacobian


class Loss(TypingProtocol):
    """Any loss of the blocks' traces: its value and dL/dV for every block."""

    name: str

    def value_and_dv(self, blocks: Sequence[ResidualBlock],
                     v: Voltages) -> tuple[float, list[np.ndarray]]: ...


class LeastSquares:
    """L = ½‖r‖²; also the residuals' form that Gauss–Newton methods use."""

    name = "least_squares"

    def value(self, blocks: Sequence[ResidualBlock], v: Voltages) -> float:
        r = residuals(blocks, v)
        return 0.5 * float(r @ r)

    def value_and_dv(self, blocks: Sequence[ResidualBlock],
                     v: Voltages) -> tuple[float, list[np.ndarray]]:
        grads = []
        for b, c in zip(blocks, _row_scales(blocks)):
            g = np.zeros(b.mask.shape)
            g[b.mask] = c**2 * (v[b.protocol][b.probe] - b.target)[b.mask]
            grads.append(g)
        return self.value(blocks, v), grads


LOSSES: dict[str, Loss] = {"least_squares": LeastSquares()}


def rms_of_loss(loss: float) -> float:
    """(Weighted) RMS voltage error (mV) of a least-squares loss."""
    return float(np.sqrt(2.0 * loss))


def mse_gradient(traces: Traces, target: np.ndarray) -> tuple[float, np.ndarray]:
    """L = mean((V − V*)²) over sites and samples, and dL/dθ by the chain rule above (one
    block per site: L is twice its least-squares loss)."""
    if traces.dv is None:
        raise GradgenError("these traces carry no gradients")
    target = np.broadcast_to(np.asarray(target, float), traces.v.shape)
    every = np.ones(traces.v.shape[1], bool)
    blocks = [ResidualBlock("run", s, target[s], every) for s in range(traces.v.shape[0])]
    loss, dloss_dv = LOSSES["least_squares"].value_and_dv(blocks, {"run": traces.v})
    return 2.0 * loss, 2.0 * theta_gradient(blocks, {"run": traces.dv}, dloss_dv)
