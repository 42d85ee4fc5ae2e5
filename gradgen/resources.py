"""The project's own `.mod` files (``mechanisms/``), wherever gradgen is installed.

A wheel ships them as the package data ``gradgen/mechanisms``; a source checkout (and an
editable install) has them beside the package. The demo and the coverage check's
background channel read them from here.
"""
from __future__ import annotations

from pathlib import Path

from gradgen.errors import GradgenError


def mechanisms_dir() -> Path:
    """The directory of the bundled mechanisms (hh.mod, pas.mod, …, io/)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "mechanisms", here.parent / "mechanisms"):
        if (candidate / "hh.mod").is_file():
            return candidate
    raise GradgenError("the bundled mechanisms are missing from this installation",
                       hint="reinstall gradgen (pip install --force-reinstall gradgen)")
