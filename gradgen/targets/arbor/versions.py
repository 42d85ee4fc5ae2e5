"""Which version of a converted mechanism each cell runs, under which name.

The gradient cell runs gradient versions, the original cell the originals compiled from the
`.mod` files (in both, GLOBALs set through derived names). A bystander
(:mod:`gradgen.sensitivity.bystanders`) runs as its original in both. Reversal-potential
methods (``decor.set_ion(method=…)``) are mapped the same way, and refused where they would
follow concentrations that depend on θ unseen.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import arbor

from gradgen.errors import GradgenError
from gradgen.manifest import MechanismEntry
from gradgen.protocol import member_prefix, original_name
from gradgen.targets.arbor.derived import DerivedName


def version(entry: MechanismEntry, derived: DerivedName, values: dict[str, float], gradients: bool,
            kind: Callable[..., Any]) -> Any:
    """``kind`` (arbor.density, synapse or mechanism) of the version the cell runs.

    Both versions take the values of the original's GLOBAL parameters through a derived name
    (``<original>/e=-65`` and the same for the gradient version), the only way Arbor sets them; the
    gradient version declares them GLOBAL too (:func:`gradgen.targets.arbor.emit.emit_contributor`).
    """
    if entry.bystander and derived.ions:
        raise GradgenError(f"mechanism '{derived.base}': renaming its ions ({', '.join(derived.ions)}) "
                           "could let it move V through another mechanism's ion unseen",
                           hint="convert it with a mechanism that reads the renamed ion")
    globals_ = {p: v for p, v in values.items() if p in entry.globals}
    ranges = {p: v for p, v in values.items() if p not in entry.globals}
    if gradients and not entry.bystander:
        return kind(derived.named(entry.gradient, globals_), ranges)
    return kind(derived.named(original_name(derived.base), globals_), ranges)


def painted_values(mech: Any) -> tuple[str, dict[str, float]]:
    """The catalogue name and every value (derived-name GLOBALs too) of a painted or placed
    ``arbor.mechanism``, as the fused and exact carriers take them."""
    derived = DerivedName.parse(mech.name)
    return derived.base, {**derived.globals, **dict(mech.values)}


Piece = tuple[str, str, dict[str, float]]  # (region, member mechanism, its values there)


def global_spread(pieces: Sequence[Piece], globals_: Mapping[str, Sequence[str]],
                  defaults: Mapping[str, Mapping[str, float]]) -> str | None:
    """Why one fused or exact mechanism cannot run every piece (None if it can): a member's
    GLOBAL (``globals_``: each member's) painted with different values, which only separate
    derived mechanisms hold — the gradient versions of the hub design."""
    for mech, names in globals_.items():
        for name in names:
            if len({vals.get(name, defaults[mech].get(name)) for _, m, vals in pieces if m == mech}) > 1:
                return f"GLOBAL '{name}' of '{mech}' with different values on the cell"
    return None


def split_globals(pieces: Sequence[Piece], globals_: Mapping[str, Sequence[str]],
                  defaults: Mapping[str, Mapping[str, float]]
                  ) -> tuple[list[Piece], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The pieces and defaults of a fused or exact mechanism without its members' GLOBALs, and
    per member their values (under its prefixed names) for the mechanism's derived name where
    they differ from the ``defaults`` it declares: it keeps them GLOBAL, as the originals do
    (Arbor averages a painted RANGE value over each CV's area, which can move it by an ulp).
    Assumes :func:`global_spread` found one value of each."""
    fixed: dict[str, dict[str, float]] = {}
    kept = []
    for region, mech, vals in pieces:
        names = set(globals_.get(mech, ()))
        fixed.setdefault(mech, {}).update({member_prefix(mech) + k: v for k, v in vals.items()
                                           if k in names and v != defaults[mech].get(k)})
        kept.append((region, mech, {k: v for k, v in vals.items() if k not in names}))
    ranges = {mech: {k: v for k, v in values.items() if k not in set(globals_.get(mech, ()))}
              for mech, values in defaults.items()}
    return kept, ranges, fixed


def method_map(mechanisms: Mapping[str, MechanismEntry], gradients: bool) -> Callable[[Any], Any]:
    """Replaces a converted reversal-potential mechanism by the version the cell runs (only a
    bystander can be one: lowering refuses writes of ``e<ion>``)."""
    def replace(method: Any) -> Any:
        name = method.name if isinstance(method, arbor.mechanism) else str(method)
        derived = DerivedName.parse(name)
        if derived.base not in mechanisms:
            return method
        values = dict(method.values) if isinstance(method, arbor.mechanism) else {}
        return version(mechanisms[derived.base], derived, {**derived.globals, **values}, gradients,
                       arbor.mechanism)
    return replace


def _ion_of(args: tuple, kwargs: dict) -> str:
    return str(args[0] if args else kwargs.get("ion"))


def _is_nernst(method: Any) -> bool:
    name = method.name if isinstance(method, arbor.mechanism) else str(method)
    return DerivedName.parse(name).base == "nernst"


def nernst_ions(ions: list[tuple[tuple, dict]]) -> set[str]:
    """Ions whose reversal potential Arbor's nernst method computes (``set_ion(method=…)``)."""
    return {_ion_of(args, kwargs) for args, kwargs in ions
            if kwargs.get("method") is not None and _is_nernst(kwargs["method"])}


def check_reversal_methods(ions: list[tuple[tuple, dict]], mechanisms: Mapping[str, MechanismEntry]) -> None:
    """Refuse a reversal-potential method on an ion whose concentration is a STATE of an input
    unless the gradient follows it: Arbor's nernst method, the internal concentration written
    by converted mechanisms (its readers then carry d e/dθ, :mod:`gradgen.sensitivity.nernst`),
    the external one constant. Otherwise E would depend on θ through a path the gradient misses."""
    for args, kwargs in ions:
        if kwargs.get("method") is None:
            continue
        ion = _ion_of(args, kwargs)
        # a bystander's too: its concentration follows ion currents, so θ, unseen
        writers = [m for m in mechanisms.values() if {f"{ion}i", f"{ion}o"} & set(m.states)]
        followed = _is_nernst(kwargs["method"]) and all(
            not m.bystander and f"{ion}o" not in m.states for m in writers)
        if writers and not followed:
            raise GradgenError(
                f"the reversal potential of '{ion}' follows its concentrations (set_ion method), "
                f"which depend on θ through {', '.join(m.original for m in writers)}: the gradient "
                "would miss that path",
                hint=f"use Arbor's nernst method with '{ion}i' written by converted mechanisms, give "
                     f"'{ion}' a fixed reversal potential, or leave its concentrations constant")


__all__ = ["check_reversal_methods", "global_spread", "method_map", "nernst_ions", "split_globals", "version"]
