"""The model's parameter set θ: which parameter of which mechanism on which region."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from gradgen.errors import GradgenError

_SPEC = re.compile(r"^(?P<mech>[A-Za-z_]\w*)\.(?P<param>[A-Za-z_]\w*)(@(?P<region>[A-Za-z_][\w\-]*))?$")


@dataclass(frozen=True)
class ParamRef:
    """θ_k: ``mech.param`` everywhere the mechanism is painted, or ``mech.param@region``.

    ``region`` names a region label of the user's label dictionary.
    """

    mechanism: str
    parameter: str
    region: str | None = None

    @property
    def name(self) -> str:
        base = f"{self.mechanism}.{self.parameter}"
        return f"{base}@{self.region}" if self.region else base

    @staticmethod
    def parse(text: str) -> "ParamRef":
        match = _SPEC.match(text.strip())
        if not match:
            raise GradgenError(f"'{text}' is not a parameter name",
                               hint="write mech.param or mech.param@region, e.g. hh.gnabar@soma")
        return ParamRef(match["mech"], match["param"], match["region"])


def parse_param_list(texts: Iterable[str]) -> list[ParamRef]:
    """Parse ``--params`` items (comma lists allowed), rejecting duplicates."""
    refs: list[ParamRef] = []
    for text in texts:
        for item in text.split(","):
            if item.strip():
                ref = ParamRef.parse(item)
                if ref in refs:
                    raise GradgenError(f"parameter '{ref.name}' is given twice")
                refs.append(ref)
    if not refs:
        raise GradgenError("no parameters given", hint="use --params mech.param,... or --all-params")
    return refs
