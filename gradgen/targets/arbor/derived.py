"""Arbor's derived mechanism names: ``pas/e=-70`` sets a GLOBAL, ``nernst/x=ca`` renames an ion.

Arbor cannot set a GLOBAL parameter per instance; its catalogue derives a new mechanism
from a name such as ``pas/e=-70,g=…`` instead. Users write such names in their decor, and
the original (reference) cell of a finite-difference check sets a GLOBAL θ the same way.
Gradient versions, fused and exact mechanisms keep the originals' GLOBALs GLOBAL and take
them through a derived name as well (a RANGE copy would be averaged over each CV's area).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gradgen.errors import GradgenError


@dataclass(frozen=True)
class DerivedName:
    """A mechanism name split into its base, GLOBAL values and ion renamings."""

    base: str
    globals: dict[str, float] = field(default_factory=dict)
    ions: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def parse(name: str) -> "DerivedName":
        base, _, rest = name.partition("/")
        values: dict[str, float] = {}
        ions: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = (s.strip() for s in item.partition("="))
            if not eq or not key or not value:
                raise GradgenError(f"mechanism '{name}': '{item}' is not NAME=VALUE",
                                   hint="derived mechanisms are written mech/param=value,ion=other")
            try:
                values[key] = float(value)
            except ValueError:
                ions[key] = value
        return DerivedName(base.strip(), values, ions)

    def named(self, base: str, globals_: dict[str, float] | None = None) -> str:
        """The Arbor name of ``base`` with these ion renamings and ``globals_`` set."""
        items = [f"{k}={float(v)!r}" for k, v in (globals_ or {}).items()]
        items += [f"{k}={v}" for k, v in self.ions.items()]
        return f"{base}/{','.join(items)}" if items else base


def base_name(name: str) -> str:
    """The catalogue mechanism a (possibly derived) name refers to."""
    return name.partition("/")[0].strip()


__all__ = ["DerivedName", "base_name"]
