"""The tuned parameters: ties between model parameters, transforms and bounds.

An optimiser works on unconstrained numbers z, one per tuned parameter. Each tuned
parameter sets one or more model parameters θ ("copies", e.g. the K reversal potential in
the soma, dendrite and axon mechanisms) to the same physical value p(z), so its gradient is
the sum of the copies' gradients times dp/dz. The transforms make z dimensionless and
comparable across parameters of very different size (0.3 S/cm² next to 1e-6 S/cm²):

- ``scaled``: p = d·z, starting at z = 1 (the paper's "scaled by defaults");
- ``log``: p = d·exp(z), starting at z = 0 (keeps the sign, suits conductances);
- ``softplus``: p = d·softplus(z)/ln 2, starting at z = 0 (positive, near-linear for large z);
- ``shift``: p = d + SHIFT_UNIT·z, starting at z = 0: one unit of z is 10 of the parameter's
  unit whatever its start, for potentials (mV) such as reversal potentials. ``scaled`` would
  make a unit of z the start value itself — 10 mV for the IO cell's leak reversal, 120 mV for
  its Ca reversal — so one trust radius would allow a 12× larger move in one than in the
  other; ``log`` cannot cross 0 and measures a potential relative to an arbitrary 0 mV.
  10 mV is the scale on which gating and driving forces change (Boltzmann slopes of 4–10 mV).

Bounds are on the physical value; the optimisers clip z to their image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gradgen.errors import GradgenError

TRANSFORMS = ("scaled", "log", "softplus", "shift")
SHIFT_UNIT = 10.0  # physical units (mV for a potential) per unit z of the shift transform
_LN2 = math.log(2.0)


def _softplus(z: float) -> float:
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _sigmoid(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


@dataclass(frozen=True)
class TunedParameter:
    """One optimised number that sets every model parameter in ``copies``."""

    name: str
    copies: tuple[str, ...]
    default: float  # physical value at the start (z0)
    transform: str = "scaled"
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise GradgenError(f"parameter '{self.name}': unknown transform '{self.transform}'",
                               hint="use one of " + ", ".join(TRANSFORMS))
        if self.default == 0.0 and self.transform != "shift":
            raise GradgenError(f"parameter '{self.name}' starts at 0, which a transform relative "
                               "to the default cannot move", hint="give it a nonzero start value")
        if self.transform in ("log", "softplus") and self.default < 0:
            raise GradgenError(f"parameter '{self.name}': the {self.transform} transform needs a "
                               "positive start value", hint="use transform 'scaled' or 'shift'")
        low, high = self.bounds
        if not low < high or not low <= self.default <= high:
            raise GradgenError(f"parameter '{self.name}': bounds {list(self.bounds)} must be "
                               f"increasing and contain the start value {self.default:g}")

    @property
    def z0(self) -> float:
        return 1.0 if self.transform == "scaled" else 0.0

    def value(self, z: float) -> float:
        if self.transform == "scaled":
            return self.default * z
        if self.transform == "shift":
            return self.default + SHIFT_UNIT * z
        if self.transform == "log":
            return self.default * math.exp(z)
        return self.default * _softplus(z) / _LN2

    def slope(self, z: float) -> float:
        """dp/dz."""
        if self.transform == "scaled":
            return self.default
        if self.transform == "shift":
            return SHIFT_UNIT
        if self.transform == "log":
            return self.default * math.exp(z)
        return self.default * _sigmoid(z) / _LN2

    def z_of(self, value: float) -> float:
        """The inverse transform (for bounds and for reporting targets in z)."""
        if self.transform == "scaled":
            return value / self.default
        if self.transform == "shift":
            return (value - self.default) / SHIFT_UNIT
        ratio = value / self.default
        if ratio <= 0:
            return -math.inf
        if self.transform == "log":
            return math.log(ratio)
        y = ratio * _LN2
        return y + math.log(-math.expm1(-y)) if y < 30 else y

    def z_bounds(self) -> tuple[float, float]:
        low, high = (self.z_of(b) if math.isfinite(b) else math.copysign(math.inf, b)
                     for b in self.bounds)
        return (min(low, high), max(low, high))


@dataclass
class Parameterisation:
    """The tuned parameters in order; maps z to model values and gives dθ/dz for the chain rule."""

    parameters: list[TunedParameter]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for p in self.parameters:
            for copy in p.copies:
                if copy in seen:
                    raise GradgenError(f"model parameter '{copy}' is tuned twice "
                                       f"('{seen[copy]}' and '{p.name}')")
                seen[copy] = p.name

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def thetas(self) -> list[str]:
        """Every model parameter that is tuned, in the order of the gradient system."""
        return [c for p in self.parameters for c in p.copies]

    def z0(self) -> np.ndarray:
        return np.array([p.z0 for p in self.parameters])

    def clip(self, z: np.ndarray) -> np.ndarray:
        low, high = np.array([p.z_bounds() for p in self.parameters]).T
        return np.clip(z, low, high)

    def physical(self, z: Sequence[float]) -> dict[str, float]:
        """Tuned parameter name -> physical value."""
        return {p.name: p.value(float(x)) for p, x in zip(self.parameters, z)}

    def model_values(self, z: Sequence[float]) -> dict[str, float]:
        """Model parameter (θ name) -> value, copies set alike."""
        values: dict[str, float] = {}
        for p, x in zip(self.parameters, z):
            for copy in p.copies:
                values[copy] = p.value(float(x))
        return values

    def slope_matrix(self, z: Sequence[float], thetas: Sequence[str]) -> np.ndarray:
        """dθ/dz, shape [len(thetas), K_z]: a tuned parameter's slope in each copy's row
        (rows of untuned θ are zero), so products with it sum over tied copies."""
        row = {name: i for i, name in enumerate(thetas)}
        slopes = np.zeros((len(thetas), len(self.parameters)))
        for j, (p, x) in enumerate(zip(self.parameters, z)):
            for copy in p.copies:
                slopes[row[copy], j] = p.slope(float(x))
        return slopes
