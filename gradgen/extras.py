"""Optional dependencies: import them where a feature needs them, with a clear message.

The tuning stack (optax, cma, scipy), the figures (matplotlib) and pycat (jax) are extras;
a user without them gets one line naming the extra to install instead of a traceback.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from gradgen.errors import GradgenError


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``import module``, or a GradgenError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise GradgenError(f"{feature} needs the Python package '{module.split('.')[0]}', which is not installed",
                           hint=f"pip install 'gradgen[{extra}]'") from None
