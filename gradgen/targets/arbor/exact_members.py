"""What runs with a cell's exact mechanism besides its painted members: synapses and pools.

Converted point processes placed as synapses run as their exact-carrier versions beside the
exact mechanism (:mod:`gradgen.targets.arbor.exact_channel`); the decor's place map swaps
them in. A member that writes a coupled concentration (a Ca pool) must cover every CV whole:
the exact mechanism writes the concentration on every CV it is painted on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import arbor

from gradgen.protocol import coverage, gradient_name
from gradgen.targets.arbor.decor import CellSpec
from gradgen.targets.arbor.derived import DerivedName, base_name

if TYPE_CHECKING:  # the model and the exact carrier import this module
    from gradgen.targets.arbor.exact_carrier import ExactLayout
    from gradgen.targets.arbor.model import GradientModel


def exact_points(model: "GradientModel", spec: CellSpec) -> list[str]:
    """The converted point processes placed on the cell as synapses."""
    return sorted({base_name(p.what.mech.name) for p in spec.decor.places
                   if isinstance(p.what, arbor.synapse) and base_name(p.what.mech.name) in model.mechanisms})


def point_blocker(model: "GradientModel", spec: CellSpec) -> str | None:
    """Why a placed point process cannot run beside the exact mechanism (None if all can)."""
    for place in spec.decor.places:
        if isinstance(place.what, arbor.synapse) and base_name(place.what.mech.name) in model.mechanisms \
                and DerivedName.parse(place.what.mech.name).ions:
            return "derived mechanism names that rename ions"
    for mech in exact_points(model, spec):
        low = model.systems[mech].lowered if not model.mechanisms[mech].bystander else None
        if low is None:
            return "a mechanism that runs as its original (a bystander)"
        if low.mechanism.kind != "point":
            return f"'{mech}' placed as a synapse but a {low.mechanism.kind} process"
        coupled = set(model.manifest.coupling.currents) | set(model.manifest.coupling.concentrations)
        if low.concentration_writes or any(var == f"i{ion}" for var, ion in low.ion_reads.items()) \
                or coupled & ({c.name for c in low.currents} | set(low.ion_reads)):
            return f"point process '{mech}' coupled through ions"
    return None


def partial_pool(model: "GradientModel", layout: "ExactLayout") -> str | None:
    """A member that writes a coupled concentration but does not cover every CV whole."""
    for mech in layout.members:
        written = set(model.exact_systems[mech].lowered.concentration_writes)
        if written & set(model.manifest.coupling.concentrations) and \
                any(dict(d.mech.values).get(coverage(mech), 0.0) != 1.0 for _, d in layout.paints):
            return mech
    return None


def points_beside(layout: "ExactLayout", gradient_map: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The decor's place map with each converted synapse as its version beside the exact
    mechanism (the gradient version's values: parameters and weights)."""
    versions = {gradient_name(point): name for point, name in layout.points.items()}

    def replace(what):
        what = gradient_map(what)
        if isinstance(what, arbor.synapse):
            derived = DerivedName.parse(what.mech.name)  # GLOBALs arrive as a derived name
            if derived.base in versions:
                return arbor.synapse(derived.named(versions[derived.base], derived.globals),
                                     dict(what.mech.values))
        return what
    return replace
