"""The cell as the user describes it: Arbor's own ingredients, recorded so they can be rebuilt.

:class:`Decor` takes the calls ``arbor.decor`` takes and remembers them (Arbor 0.12 cannot
read stimuli back from a finished ``arbor.decor``), so that the runtime can rebuild the cell
with gradient or original mechanisms, on the original or the transformed geometry.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import arbor
from arbor import units as U

from gradgen.errors import GradgenError


@dataclass
class _Paint:
    region: str
    what: Any = None
    kwargs: dict = field(default_factory=dict)


@dataclass
class _Place:
    locset: str
    what: Any
    label: str | None


class Decor(arbor.decor):
    """An ``arbor.decor`` that also records its calls, so the cell can be rebuilt with other
    mechanisms.

    Supports ``set_property``, ``paint`` (densities and membrane properties), ``place``
    (stimuli, detectors, synapses) and ``set_ion``, with the arguments ``arbor.decor`` takes;
    each call also goes to ``arbor.decor`` itself, so ``arbor.cable_cell(morphology, decor, …)``
    builds the user's original cell unchanged (and :func:`recorded_cells` turns it into a
    :class:`CellSpec`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.properties: dict[str, Any] = {}
        self.paints: list[_Paint] = []
        self.places: list[_Place] = []
        self.ions: list[tuple[tuple, dict]] = []

    def __copy__(self) -> "Decor":
        """A new decor with the same calls replayed (arbor.decor itself cannot be copied)."""
        new = Decor()
        if self.properties:
            new.set_property(**self.properties)
        for args, kwargs in self.ions:
            new.set_ion(*args, **kwargs)
        for p in self.paints:
            new.paint(p.region, p.what, **p.kwargs)
        for p in self.places:
            new.place(p.locset, p.what, p.label)
        return new

    def set_property(self, **kwargs) -> "Decor":
        super().set_property(**kwargs)
        self.properties.update({k: v for k, v in kwargs.items() if v is not None})
        return self

    def paint(self, region: str, what: Any = None, **kwargs) -> "Decor":
        if what is None:
            super().paint(region, **kwargs)
        else:
            super().paint(region, what, **kwargs)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if what is not None or kwargs:
            self.paints.append(_Paint(region, what, kwargs))
        return self

    def place(self, locset: str, what: Any, label: str | None = None) -> "Decor":
        if label is None:
            super().place(locset, what)
        else:
            super().place(locset, what, label)
        self.places.append(_Place(locset, what, label))
        return self

    def set_ion(self, *args, **kwargs) -> "Decor":
        super().set_ion(*args, **kwargs)
        self.ions.append((args, kwargs))
        return self

    def densities(self) -> list[tuple[str, str, dict[str, float]]]:
        """(region, mechanism, parameter values) of every painted density."""
        out = []
        for p in self.paints:
            if isinstance(p.what, arbor.density):
                out.append((p.region, p.what.mech.name, dict(p.what.mech.values)))
        return out

    def membrane_property(self, name: str) -> list[tuple[str, Any]]:
        return [(p.region, p.kwargs[name]) for p in self.paints if name in p.kwargs]

    def to_arbor(self, densities: Iterable[tuple[str, arbor.density]],
                 region_map: Callable[[str], str] = str,
                 locset_map: Callable[[str], str] = str,
                 without: Sequence[str] = (),
                 place_map: Callable[[Any], Any] = lambda what: what,
                 method_map: Callable[[Any], Any] = lambda method: method) -> arbor.decor:
        """An ``arbor.decor`` with these densities in place of the recorded ones.

        ``region_map`` / ``locset_map`` translate every region / locset expression (onto a
        transformed geometry); the densities' regions are translated too. Membrane
        properties named in ``without`` are left out of the region paints. ``place_map``
        replaces placed items (synapses and gap junctions by their gradient or original
        versions) and painted voltage processes,
        ``method_map`` the reversal-potential mechanisms of ``set_ion``.
        """
        decor = arbor.decor()
        if self.properties:
            decor.set_property(**self.properties)
        for args, kwargs in self.ions:
            if kwargs.get("method") is not None:
                kwargs = {**kwargs, "method": method_map(kwargs["method"])}
            decor.set_ion(*args, **kwargs)
        for p in self.paints:
            if p.what is None:
                kwargs = {k: v for k, v in p.kwargs.items() if k not in without}
                if kwargs:
                    decor.paint(region_map(p.region), **kwargs)
            elif not isinstance(p.what, arbor.density):
                decor.paint(region_map(p.region), place_map(p.what), **p.kwargs)
        for region, density in densities:
            decor.paint(region_map(region), density)
        for p in self.places:
            if p.label is None:
                decor.place(locset_map(p.locset), place_map(p.what))
            else:
                decor.place(locset_map(p.locset), place_map(p.what), p.label)
        return decor

    def synapses(self) -> dict[str, str]:
        """Label -> mechanism of every labelled synapse placement."""
        return {p.label: p.what.mech.name for p in self.places
                if isinstance(p.what, arbor.synapse) and p.label is not None}

    def voltage_processes(self) -> list[str]:
        """Mechanism of every painted voltage process."""
        return [p.what.mech.name for p in self.paints if isinstance(p.what, arbor.voltage_process)]

    def junctions(self) -> dict[str, str]:
        """Label -> mechanism of every labelled gap-junction placement."""
        return {p.label: p.what.mech.name for p in self.places
                if isinstance(p.what, arbor.junction) and p.label is not None}

    def diffusive_ions(self) -> list[str]:
        """Ions given a diffusivity by this decor (they would diffuse on the transformed geometry)."""
        out = [str(args[0] if args else kwargs.get("ion")) for args, kwargs in self.ions
               if "diff" in kwargs]
        out += [str(p.kwargs.get("ion")) for p in self.paints if "diff" in p.kwargs]
        return out


# ---------------------------------------------------------------- cell description


@dataclass
class SpikeInput:
    """Events delivered to the synapses placed with ``label``, each with ``weight`` (µS).

    A parameter ``<synapse mechanism>.<NET_RECEIVE argument>`` (e.g. ``expsyn.weight``)
    overrides the weight of every input to synapses of that mechanism.
    """

    label: str
    times_ms: Sequence[float]
    weight: float

    def generator(self, weight: float) -> arbor.event_generator:
        return arbor.event_generator(self.label, weight,
                                     arbor.explicit_schedule([t * U.ms for t in self.times_ms]))


@dataclass
class GapJunction:
    """A gap junction between two junction sites of one cell: at the site placed with label
    ``local``, peer at ``peer`` (Arbor's ``gap_junction_connection``, unit-less ``weight``).
    Arbor instantiates one side per connection: list both directions for a symmetric junction."""

    local: str
    peer: str
    weight: float = 1.0

    def connection(self, gid: int) -> arbor.gap_junction_connection:
        return arbor.gap_junction_connection((gid, self.peer), self.local, self.weight)


@dataclass
class CellSpec:
    """A cable cell as the user describes it: Arbor's own ingredients."""

    morphology: arbor.morphology
    decor: Decor
    labels: arbor.label_dict = field(default_factory=arbor.label_dict)
    cv_policy: Any = None
    inputs: list[SpikeInput] = field(default_factory=list)  # presynaptic spike trains
    gap_junctions: list[GapJunction] = field(default_factory=list)  # within this cell
    #: ion species Arbor's default properties lack (e.g. Arbor's generic ``x``): name ->
    #: keywords of ``cable_cell_global_properties.set_ion`` (with units)
    ions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What the runtime derived from this spec (its transformed geometry), keyed by what it
    #: depends on, so that repeated runs of one spec pay for it once.
    derived: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def build(self, decor: arbor.decor) -> arbor.cable_cell:
        # an explicit policy even by default: arbor.cv_data returns None without one
        policy = self.cv_policy or arbor.default_cv_policy()
        return arbor.cable_cell(self.morphology, decor, self.labels, policy)


@contextmanager
def recorded_cells() -> Iterator[list[CellSpec]]:
    """The :class:`CellSpec` of every ``arbor.cable_cell`` built from a :class:`Decor` inside
    the block, so that a user's own cell-building code (``make_cell`` calling
    ``arbor.cable_cell``) needs no change but ``arbor.decor()`` → ``gradgen.Decor()``.

    ``arbor.cable_cell`` is wrapped only inside the block and still builds the cell.
    """
    specs: list[CellSpec] = []
    build = arbor.cable_cell

    def recording(morphology: Any, decor: Any, labels: Any = None, policy: Any = None, **kwargs) -> Any:
        labels = kwargs.pop("labels", labels)
        policy = kwargs.pop("discretization", policy)
        cell = build(morphology, decor, labels, policy, **kwargs)
        if isinstance(decor, Decor):
            if not isinstance(morphology, arbor.morphology):
                morphology = arbor.morphology(morphology)
            specs.append(CellSpec(morphology, decor, labels or arbor.label_dict(), policy))
        return cell

    arbor.cable_cell = recording
    try:
        yield specs
    finally:
        arbor.cable_cell = build


def _quantity(value: Any, unit: U.unit) -> float:
    return float(value.value_as(unit)) if hasattr(value, "value_as") else float(value)


@dataclass
class Membrane:
    """Membrane constants in the API units µF/cm² and Ω·cm: a default cm and rL and their
    per-region paints (region, value) in paint order."""

    cm: float
    rL: float
    rL_regions: tuple[tuple[str, float], ...] = ()
    cm_regions: tuple[tuple[str, float], ...] = ()


def membrane_of(spec: CellSpec, props: arbor.cable_cell_global_properties) -> Membrane:
    """The cell's capacitances and axial resistivities.

    Per-region rL is folded into the geometry transform's per-piece rL; per-region cm into
    its per-CV radius (the carrier needs vol/C equal on every CV).
    """
    cm = spec.decor.properties.get("cm")
    rL = spec.decor.properties.get("rL")
    cm_F_m2 = _quantity(cm, U.F / U.m2) if cm is not None else props.membrane_capacitance
    rL_ohm_cm = _quantity(rL, U.Ohm * U.cm) if rL is not None else props.axial_resistivity
    regions = tuple((region, _plain_quantity(value, U.Ohm * U.cm, "rL"))
                    for region, value in spec.decor.membrane_property("rL"))
    cm_regions = tuple((region, _plain_quantity(value, U.F / U.m2, "cm") * 100.0)
                       for region, value in spec.decor.membrane_property("cm"))
    return Membrane(cm=cm_F_m2 * 100.0, rL=rL_ohm_cm, rL_regions=regions, cm_regions=cm_regions)


def _plain_quantity(value: Any, unit: U.unit, name: str) -> float:
    if isinstance(value, tuple):
        raise GradgenError(f"'{name}' is painted with an iexpr scale; it would change meaning "
                           "on the gradient cell's transformed geometry",
                           hint=f"paint plain values of {name} per region")
    return _quantity(value, unit)
