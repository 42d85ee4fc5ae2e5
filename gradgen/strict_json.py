"""JSON that every parser reads: NaN and infinities become null (the JSON standard has none)."""
from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, through dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that refuses to write bare NaN/Infinity: they are written as null."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
