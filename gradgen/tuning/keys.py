"""The keys a tuning config may have, and where a key sits in the file.

A misspelt key (``iteratons = 5``) would otherwise be ignored and its default used
silently, so every key outside this list is an error at its file:line:col.
"""
from __future__ import annotations

import re
from typing import Any

from gradgen.errors import GradgenError, SourcePos

#: Keys of each table; None: the table's keys are names the loader checks itself
#: (regions, parameters).
KNOWN_KEYS: dict[str, set[str] | None] = {
    "model": {"morphology", "cv_policy", "mechanisms", "v_init", "cm", "rL", "probe", "paint",
              "values", "target", "carrier"},
    "model.paint": None,
    "model.values": None,
    "simulation": {"t_end", "dt", "sample_dt", "windows"},
    "tune": {"parameters", "transform", "transforms", "tie", "bounds"},
    "tune.transforms": None,
    "tune.tie": None,
    "tune.bounds": None,
    "target": {"values", "file", "files", "series", "sweep", "channel", "start"},
    "target.values": None,
    "target.files": None,
    "loss": {"kind"},
    "optimizer": {"method", "iterations", "learning_rate", "population", "sigma0", "seed",
                  "seconds", "stop_rms_mV", "distributed", "workers"},
    "output": {"directory"},
}

_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-.]+)\s*=")


def key_pos(text: str, filename: str, table: str, key: str) -> SourcePos | None:
    """Where ``key`` is assigned inside ``[table]`` (or as ``key`` dotted from a parent table)."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).replace(" ", "").replace('"', "")
            continue
        match = _KEY.match(line)
        if not match:
            continue
        name = match.group(1).strip("\"'")
        full = f"{current}.{name}" if current else name
        if full == f"{table}.{key}" or (current == table and name == key):
            return SourcePos(filename, number, match.start(1) + 1)
    return None


def check_keys(data: dict[str, Any], text: str, filename: str) -> None:
    """Refuse the first key that no table knows, at its position."""
    for table, known in KNOWN_KEYS.items():
        head, _, tail = table.partition(".")
        values = data.get(head, {})
        if tail:
            values = values.get(tail, {}) if isinstance(values, dict) else {}
        if known is None or not isinstance(values, dict):
            continue
        for key in values:
            if key not in known:
                raise GradgenError(f"[{table}] unknown key '{key}'",
                                   key_pos(text, filename, table, key) or SourcePos(filename, 1, 1),
                                   hint="known keys: " + ", ".join(sorted(known)))
