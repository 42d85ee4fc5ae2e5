"""Cells from SWC files: regions from the SWC tags and a CV policy named in plain words.

Tuning configs name a morphology file and paint mechanisms on the regions ``soma``,
``axon`` and ``dend`` (SWC tags 1, 2 and 3 or 4), so any reconstruction works unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arbor
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.targets.arbor.swc_check import check_swc

#: Regions every loaded cell has; apical dendrites (tag 4) count as dendrite.
REGIONS = {"soma": "(tag 1)", "axon": "(tag 2)", "dend": "(join (tag 3) (tag 4))", "all": "(all)"}

_POLICIES = "'branch:N' (N CVs per branch) or 'extent:L' (CVs at most L µm long)"


@dataclass
class LoadedCell:
    """A morphology with the standard region labels."""

    morphology: arbor.morphology
    labels: arbor.label_dict
    path: Path

    def region_is_empty(self, region: str) -> bool:
        cell = arbor.cable_cell(self.morphology, arbor.decor(), self.labels)
        return not cell.cables(f'"{region}"')


def load_swc(path: Path | str) -> LoadedCell:
    """Load an SWC file (NEURON's soma convention) with ``soma``/``axon``/``dend``/``all`` labels."""
    path = Path(path)
    if not path.is_file():
        raise GradgenError(f"morphology file {path} not found", hint="give the path of an .swc file")
    check_swc(path)
    try:
        loaded = arbor.load_swc_neuron(str(path))
    except Exception as error:  # Arbor raises plain RuntimeErrors with its own message
        raise GradgenError(f"{path}: not a readable SWC neuron: {error}",
                           hint="SWC rows are: id tag x y z radius parent") from None
    return LoadedCell(loaded.morphology, arbor.label_dict(REGIONS), path)


def cv_policy(text: str) -> arbor.cv_policy:
    """``branch:N`` -> N CVs per branch; ``extent:L`` -> CVs of at most L µm."""
    kind, _, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if kind == "branch" and number >= 1 and number == int(number):
        return arbor.cv_policy_fixed_per_branch(int(number))
    if kind == "extent" and number > 0:
        return arbor.cv_policy_max_extent(number * U.um)
    raise GradgenError(f"unknown CV policy {text!r}", hint=f"use {_POLICIES}")
