"""gradgen: gradient mechanisms for Arbor, generated from NMODL.

The public API in one place: convert `.mod` files (:func:`convert`), describe a cell with
Arbor's own calls (:class:`Decor`, :class:`CellSpec`), simulate with gradients
(:class:`GradientModel`) and turn traces into loss gradients (:func:`mse_gradient`).
"""

__version__ = "0.1.0"

from gradgen.convert import convert  # noqa: E402
from gradgen.errors import GradgenError  # noqa: E402
from gradgen.params import ParamRef, parse_param_list  # noqa: E402
from gradgen.runtime import CellSpec, Decor, GradientModel, SpikeInput, Traces, mse_gradient  # noqa: E402
from gradgen.homeostasis import (  # noqa: E402
    HomeostaticConfig, RateTarget, VoltageTarget, convert_homeostatic)
from gradgen.homeostasis_run import HomeostaticRun  # noqa: E402
from gradgen.tune import run_tuning  # noqa: E402

__all__ = ["convert", "GradgenError", "ParamRef", "parse_param_list", "CellSpec", "Decor",
           "GradientModel", "SpikeInput", "Traces", "mse_gradient", "__version__", "run_tuning",
           "HomeostaticConfig", "RateTarget", "VoltageTarget", "convert_homeostatic", "HomeostaticRun"]
