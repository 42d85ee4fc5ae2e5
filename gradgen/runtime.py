"""Run gradient mechanisms inside an ordinary Arbor model.

The user describes the cell as usual, with :class:`Decor` in place of ``arbor.decor``
(same ``set_property`` / ``paint`` / ``place`` calls; Arbor 0.12 cannot read stimuli back
from a finished ``arbor.decor``). :class:`GradientModel` then builds

- the gradient cell: every converted mechanism replaced by its gradient version, split
  where a parameter θ_k is bound to a region (weight w_k = 1 there), the hub on the whole
  cell, and the diffusive gradient ions with a diffusivity that makes ion diffusion equal
  to the cable equation's axial term. Ion diffusion can equal it only on one common
  radius, so the gradient cell is the electrically identical constant-radius cell of
  :mod:`gradgen.geometry`, built and voltage-checked once per :class:`CellSpec`, with the
  user's regions, locsets and probe sites mapped onto it;
- or the original cell, with parameters overridden, compiled from the original `.mod`
  files — the reference for finite differences.

Sampling returns V and dV/dθ at the probe sites; :func:`mse_gradient` turns them into
loss gradients by the chain rule.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.blowup import check_finite
from gradgen.build import build_catalogue, build_directory
from gradgen.coupling import STORE_DIFFUSIVITY
from gradgen.emit import HUB_NAME
from gradgen.errors import GradgenError
from gradgen.geometry import (
    EquivalentGeometry,
    carrier_diffusivity,
    equivalent_cell,
    naive_carrier_paints,
    worst_radius_ratio,
)
from gradgen.geometry_check import check_equivalence
from gradgen.params import ParamRef, carrier_ion, gradient_ions
from gradgen.step_check import warn_for_model

MANIFEST = "gradients.json"
ORIGINAL_PREFIX = "orig_"


# ---------------------------------------------------------------- recording decor


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


class Decor:
    """Records ``arbor.decor`` calls so the cell can be rebuilt with other mechanisms.

    Supports ``set_property``, ``paint`` (densities and membrane properties), ``place``
    (stimuli, detectors, synapses) and ``set_ion``, with the arguments ``arbor.decor`` takes.
    """

    def __init__(self) -> None:
        self.properties: dict[str, Any] = {}
        self.paints: list[_Paint] = []
        self.places: list[_Place] = []
        self.ions: list[tuple[tuple, dict]] = []

    def set_property(self, **kwargs) -> "Decor":
        self.properties.update(kwargs)
        return self

    def paint(self, region: str, what: Any = None, **kwargs) -> "Decor":
        self.paints.append(_Paint(region, what, kwargs))
        return self

    def place(self, locset: str, what: Any, label: str | None = None) -> "Decor":
        self.places.append(_Place(locset, what, label))
        return self

    def set_ion(self, *args, **kwargs) -> "Decor":
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
                 place_map: Callable[[Any], Any] = lambda what: what) -> arbor.decor:
        """An ``arbor.decor`` with these densities in place of the recorded ones.

        ``region_map`` / ``locset_map`` translate every region / locset expression (onto a
        transformed geometry); the densities' regions are translated too. Membrane
        properties named in ``without`` are left out of the region paints. ``place_map``
        replaces placed items (synapses by their gradient or original versions).
        """
        decor = arbor.decor()
        if self.properties:
            decor.set_property(**self.properties)
        for args, kwargs in self.ions:
            decor.set_ion(*args, **kwargs)
        for p in self.paints:
            if p.what is None:
                kwargs = {k: v for k, v in p.kwargs.items() if k not in without}
                if kwargs:
                    decor.paint(region_map(p.region), **kwargs)
            elif not isinstance(p.what, arbor.density):
                decor.paint(region_map(p.region), p.what, **p.kwargs)
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
class CellSpec:
    """A cable cell as the user describes it: Arbor's own ingredients."""

    morphology: arbor.morphology
    decor: Decor
    labels: arbor.label_dict = field(default_factory=arbor.label_dict)
    cv_policy: Any = None
    inputs: list[SpikeInput] = field(default_factory=list)  # presynaptic spike trains

    def build(self, decor: arbor.decor) -> arbor.cable_cell:
        # an explicit policy even by default: arbor.cv_data returns None without one
        policy = self.cv_policy or arbor.default_cv_policy()
        return arbor.cable_cell(self.morphology, decor, self.labels, policy)


def _quantity(value: Any, unit: U.unit) -> float:
    return float(value.value_as(unit)) if hasattr(value, "value_as") else float(value)


@dataclass
class Membrane:
    """Membrane constants in the API units µF/cm² and Ω·cm: one cm, a default rL and the
    per-region rL paints (region, Ω·cm) in paint order."""

    cm: float
    rL: float
    rL_regions: tuple[tuple[str, float], ...] = ()


def membrane_of(spec: CellSpec, props: arbor.cable_cell_global_properties) -> Membrane:
    """The cell's capacitance and axial resistivities; per-region cm is refused.

    The carrier needs vol/C equal on every CV, which a varying cm would break; per-region rL
    is folded into the geometry transform's per-piece rL.
    """
    if spec.decor.membrane_property("cm"):
        raise GradgenError(
            "'cm' is painted on a region; gradient ions need one value per cell",
            hint="set it with decor.set_property(cm=...)")
    cm = spec.decor.properties.get("cm")
    rL = spec.decor.properties.get("rL")
    cm_F_m2 = _quantity(cm, U.F / U.m2) if cm is not None else props.membrane_capacitance
    rL_ohm_cm = _quantity(rL, U.Ohm * U.cm) if rL is not None else props.axial_resistivity
    regions = tuple((region, _plain_quantity(value, U.Ohm * U.cm, "rL"))
                    for region, value in spec.decor.membrane_property("rL"))
    return Membrane(cm=cm_F_m2 * 100.0, rL=rL_ohm_cm, rL_regions=regions)


def _plain_quantity(value: Any, unit: U.unit, name: str) -> float:
    if isinstance(value, tuple):
        raise GradgenError(f"'{name}' is painted with an iexpr scale; it would change meaning "
                           "on the gradient cell's transformed geometry",
                           hint=f"paint plain values of {name} per region")
    return _quantity(value, unit)


def cv_lengths(cell: arbor.cable_cell, morphology: arbor.morphology) -> list[float]:
    """Length (µm) of every CV of a built cell."""
    data = arbor.cv_data(cell)
    lengths = []
    for i in range(data.num_cv):
        lengths.append(sum(_cable_length(morphology, c) for c in data.cables(i)))
    return lengths


def _cable_length(morphology: arbor.morphology, cable) -> float:
    segs = morphology.branch_segments(cable.branch)
    length = sum(np.linalg.norm(np.subtract((s.dist.x, s.dist.y, s.dist.z),
                                            (s.prox.x, s.prox.y, s.prox.z))) for s in segs)
    return length * (cable.dist - cable.prox)


def cv_of(cell: arbor.cable_cell, site: str, what: str = "probe site") -> tuple[int, list]:
    """The index and cables of the CV that holds the single location ``site``."""
    locations = cell.locations(site)
    if len(locations) != 1:
        raise GradgenError(f"{what} {site!r} must name exactly one location (got {len(locations)})")
    loc = locations[0]
    data = arbor.cv_data(cell)
    for i in range(data.num_cv):
        cables = data.cables(i)
        if any(c.branch == loc.branch and c.prox <= loc.pos <= c.dist and c.dist > c.prox for c in cables):
            return i, cables
    raise GradgenError(f"{what} {site!r} lies in no CV")


def cv_centre(cell: arbor.cable_cell, site: str) -> str:
    """The centre of the CV that holds the location ``site``, as a location expression."""
    _, cables = cv_of(cell, site)
    if len(cables) != 1:
        raise GradgenError(f"probe site {site!r} lies in a fork CV", hint="move it into a branch")
    c = cables[0]
    return f"(location {c.branch} {0.5 * (c.prox + c.dist)!r})"


# ---------------------------------------------------------------- the gradient cell's geometry

#: Short hh + pas run comparing the transformed with the original cell, once per spec.
EQUIVALENCE_T_END_MS = 50.0
#: Largest accepted |V_transformed − V_original|. Measured ≤ 4e-8 mV over 250 ms on the
#: acceptance cells (rounding, at the level of merely translating the cell); a transform
#: that were wrong for some geometry would show up orders of magnitude above this.
EQUIVALENCE_TOLERANCE_MV = 1e-5

log = logging.getLogger("gradgen")


@dataclass(frozen=True)
class CellGeometry:
    """The equivalent constant-radius geometry of a spec and its start-up check
    (:func:`gradgen.geometry_check.check_equivalence`: hh + pas, 0.2 nA into the root)."""

    equivalent: EquivalentGeometry
    check: dict

    @property
    def max_abs_dV_mV(self) -> float:
        """max |V_transformed − V_original| of the check run."""
        return self.check["max_abs_dV_mV"]


_GEOMETRIES: dict[tuple, tuple[CellSpec, CellGeometry]] = {}


def cell_geometry(spec: CellSpec, membrane: Membrane) -> CellGeometry:
    """Transform and check the spec's cell, cached per spec (and its morphology, labels, CV
    policy and membrane constants); refuses what the transform cannot represent."""
    key = (id(spec), id(spec.morphology), id(spec.labels), id(spec.cv_policy),
           membrane.cm, membrane.rL, membrane.rL_regions)
    hit = _GEOMETRIES.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    uniform = worst_radius_ratio(spec.morphology) <= 1.0 + 1e-9
    diffusive = spec.decor.diffusive_ions()
    if diffusive and not uniform:
        raise GradgenError(
            f"ion(s) {', '.join(sorted(set(diffusive)))} diffuse: the gradient cell runs on a "
            "constant-radius equivalent geometry where their diffusion would change",
            hint="remove the ion diffusivity, or use a constant-radius morphology")
    geo = equivalent_cell(spec.morphology, spec.labels, spec.cv_policy, membrane.rL, membrane.cm,
                          rL_regions=membrane.rL_regions)
    check = check_equivalence(geo, t_end=EQUIVALENCE_T_END_MS)
    if not check["max_abs_dV_mV"] <= EQUIVALENCE_TOLERANCE_MV:
        raise GradgenError(
            f"the constant-radius equivalent of this cell changes the voltage by "
            f"{check['max_abs_dV_mV']:.3g} mV (expected ≤ {EQUIVALENCE_TOLERANCE_MV:g} mV); its "
            "gradients would be off by a similar relative amount",
            hint="please report this morphology and CV policy")
    log.info("gradient cell: constant-radius equivalent (radius %.4g µm, %d pieces), "
             "max |V_transformed - V_original| = %.3g mV over %g ms",
             geo.radius_um, len(geo.pieces), check["max_abs_dV_mV"], EQUIVALENCE_T_END_MS)
    found = CellGeometry(geo, check)
    _GEOMETRIES[key] = (spec, found)
    return found


# ---------------------------------------------------------------- traces and losses


@dataclass
class Traces:
    """Samples at the probe sites: ``v[site, t]`` and ``dv[site, k, t]`` (mV per unit θ_k)."""

    t: np.ndarray
    v: np.ndarray
    dv: np.ndarray | None = None


def mse_gradient(traces: Traces, target: np.ndarray) -> tuple[float, np.ndarray]:
    """L = mean((V − V*)²) over sites and samples, and dL/dθ by the chain rule."""
    if traces.dv is None:
        raise GradgenError("these traces carry no gradients")
    residual = traces.v - target
    loss = float(np.mean(residual**2))
    grad = 2.0 * np.einsum("st,skt->k", residual, traces.dv) / residual.size
    return loss, grad


# ---------------------------------------------------------------- the gradient model


@dataclass
class GradientModel:
    """A converted parameter set: manifest, gradient catalogue and original catalogue."""

    directory: Path
    params: list[ParamRef]
    mechanisms: dict[str, dict]  # original name -> manifest entry
    defaults: dict[str, float] = field(default_factory=dict)  # θ name -> value in the .mod file
    store_ions: list[str] = field(default_factory=list)  # ion-coupling stores (gradgen.coupling)
    carrier_geometry: Literal["exact", "naive"] = "exact"  # "naive": benchmarks only

    @staticmethod
    def load(directory: Path | str) -> "GradientModel":
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.exists():
            raise GradgenError(f"{path} not found", hint="run `gradgen convert` first")
        data = json.loads(path.read_text())
        params = [ParamRef(p["mechanism"], p["parameter"], p.get("region")) for p in data["parameters"]]
        return GradientModel(directory, params, {m["original"]: m for m in data["mechanisms"]},
                             {p["name"]: p["default"] for p in data["parameters"]},
                             data.get("coupling", {}).get("store_ions", []))

    @cached_property
    def gradient_catalogue(self) -> Path:
        return build_directory(self.directory, "gradgen")

    @cached_property
    def original_catalogue(self) -> Path:
        sources = {f"{name}.mod": (self.directory / m["source_copy"]).read_text()
                   for name, m in self.mechanisms.items()}
        return build_catalogue(sources, "original")

    # -- properties

    def properties(self, gradients: bool, base: arbor.cable_cell_global_properties | None = None,
                   diffusivity: float = 1e-9) -> arbor.cable_cell_global_properties:
        props = base or arbor.neuron_cable_properties()
        if gradients:
            props.catalogue.extend(arbor.load_catalogue(str(self.gradient_catalogue)), "")
            for ion in gradient_ions(len(self.params)):
                props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM,
                              rev_pot=0 * U.mV, diff=diffusivity * U.m2 / U.s)
            for ion in self.store_ions:
                props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM,
                              rev_pot=0 * U.mV, diff=STORE_DIFFUSIVITY * U.m2 / U.s)
        else:
            props.catalogue.extend(arbor.load_catalogue(str(self.original_catalogue)), ORIGINAL_PREFIX)
        return props

    # -- cells

    def _densities(self, spec: CellSpec, gradients: bool, values: dict[str, float],
                   membrane: Membrane) -> list[tuple[str, arbor.density]]:
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise GradgenError(f"unknown parameter(s) {', '.join(sorted(unknown))}",
                               hint="known: " + ", ".join(p.name for p in self.params))
        painted = {mech for _, mech, _ in spec.decor.densities()} | set(spec.decor.synapses().values())
        for ref in self.params:
            if ref.mechanism not in painted:
                raise GradgenError(f"parameter '{ref.name}': mechanism '{ref.mechanism}' is not "
                                   "painted or placed (with a label) on the cell")
            if ref.region and ref.region not in spec.labels:
                raise GradgenError(f"parameter '{ref.name}': the cell has no region label "
                                   f"'{ref.region}'", hint="its labels: " + ", ".join(sorted(
                                       spec.labels.keys())) if len(spec.labels) else "it has no labels")
        out: list[tuple[str, arbor.density]] = []
        for region, mech, user_values in spec.decor.densities():
            if mech not in self.mechanisms:
                raise GradgenError(
                    f"mechanism '{mech}' is painted but was not converted: its states would "
                    "carry no sensitivities and the gradients would be wrong",
                    hint=f"add its .mod file to `gradgen convert`")
            name = self.mechanisms[mech]["gradient"] if gradients else ORIGINAL_PREFIX + mech
            refs = [(k, p) for k, p in enumerate(self.params) if p.mechanism == mech]
            regions = sorted({p.region for _, p in refs if p.region})
            for inside in _memberships(len(regions)):
                # a bare label must be named as (region "x") inside intersect: Arbor cannot
                # tell a quoted label's kind there
                piece = f"(region {region})" if regions and region.strip().startswith('"') else region
                for reg, is_in in zip(regions, inside):
                    term = f'(region "{reg}")'
                    piece = f"(intersect {piece} {term if is_in else f'(complement {term})'})"
                vals = dict(user_values)
                for k, ref in refs:
                    applies = ref.region is None or inside[regions.index(ref.region)]
                    if applies and ref.name in values:
                        vals[ref.parameter] = values[ref.name]
                    if gradients and applies:
                        vals[f"gg_w{k}"] = 1.0
                out.append((piece, arbor.density(name, vals)))
        if gradients:
            out.append(("(all)", arbor.density(HUB_NAME, {"cm": membrane.cm})))
        return out

    def _synapse_map(self, gradients: bool, values: dict[str, float]) -> Callable[[Any], Any]:
        """Replaces each placed synapse of a converted mechanism by its gradient or original version."""
        def replace(what: Any) -> Any:
            if not isinstance(what, arbor.synapse):
                return what
            mech = what.mech.name
            if mech not in self.mechanisms:
                if gradients:
                    raise GradgenError(
                        f"synapse '{mech}' is placed but was not converted: its current would "
                        "carry no sensitivities and the gradients would be wrong",
                        hint="add its .mod file to `gradgen convert`")
                return what
            vals = dict(what.mech.values)
            for k, ref in enumerate(self.params):
                if ref.mechanism != mech:
                    continue
                if ref.region:
                    raise GradgenError(f"parameter '{ref.name}': a synapse parameter cannot be bound "
                                       "to a region", hint=f"use {mech}.{ref.parameter}")
                if ref.name in values and ref.parameter in self.mechanisms[mech]["parameters"]:
                    vals[ref.parameter] = values[ref.name]
                if gradients:
                    vals[f"gg_w{k}"] = 1.0
            name = self.mechanisms[mech]["gradient"] if gradients else ORIGINAL_PREFIX + mech
            return arbor.synapse(name, vals)
        return replace

    def generators(self, spec: CellSpec, values: dict[str, float] | None = None) -> list[arbor.event_generator]:
        """The spec's spike inputs, with weights overridden by weight parameters in ``values``."""
        values = values or {}
        targets = spec.decor.synapses()
        out = []
        for source in spec.inputs:
            if source.label not in targets:
                raise GradgenError(f"spike input to '{source.label}': no synapse is placed with that label",
                                   hint="labels: " + ", ".join(targets))
            weight = source.weight
            for ref in self.params:
                if ref.mechanism == targets[source.label] and ref.name in values \
                        and ref.parameter not in self.mechanisms[ref.mechanism]["parameters"]:
                    weight = values[ref.name]
            out.append(source.generator(weight))
        return out

    def geometry(self, spec: CellSpec) -> CellGeometry:
        """The constant-radius geometry the gradient cell of ``spec`` runs on, with its check.

        Built and checked once per spec (cached; :func:`cell_geometry`), so tuning loops that
        call :meth:`simulate` many times on one spec pay for it once.
        """
        return cell_geometry(spec, membrane_of(spec, arbor.neuron_cable_properties()))

    def _build(self, spec: CellSpec, gradients: bool, values: dict[str, float] | None,
               membrane: Membrane) -> arbor.cable_cell:
        """The original cell, or the gradient cell on the equivalent constant-radius geometry.

        The carriers' ion diffusion equals the voltage operator only on one common radius, so
        the gradient cell is the electrically identical transformed cell with rL and the
        carriers' diffusivity painted per half-CV; every region and locset of the user's decor
        is mapped onto it. ``carrier_geometry = "naive"`` keeps the original geometry with a
        per-half-CV diffusivity instead (only to measure what the transform removes).
        """
        densities = self._densities(spec, gradients, values or {}, membrane)
        synapses = self._synapse_map(gradients, values or {})
        if not gradients:
            return spec.build(spec.decor.to_arbor(densities, place_map=synapses))
        ions = [carrier_ion(k) for k in range(len(self.params))]
        if self.carrier_geometry == "naive":
            if membrane.rL_regions:
                raise GradgenError("the naive carrier geometry assumes one rL")
            decor = spec.decor.to_arbor(densities, place_map=synapses)
            paints = naive_carrier_paints(spec.morphology, spec.labels,
                                          spec.cv_policy or arbor.default_cv_policy(),
                                          membrane.rL, membrane.cm)
            for ion in ions:
                for region, d in paints:
                    decor.paint(region, ion=ion, diff=d * U.m2 / U.s)
            return spec.build(decor)
        readers = sorted({m for _, m, _ in spec.decor.densities()
                          if self.mechanisms.get(m, {}).get("reads_diam")})
        if readers and worst_radius_ratio(spec.morphology) > 1.0 + 1e-9:
            raise GradgenError(
                f"{', '.join(readers)} read(s) diam, which the gradient cell's constant-radius "
                "equivalent geometry changes (CV areas are kept, diameters are not)",
                hint="use area instead of diam, or a constant-radius morphology")
        geo = cell_geometry(spec, membrane).equivalent
        # rL is the transform's: it paints every piece with the rL that keeps its resistance
        decor = spec.decor.to_arbor(densities, geo.map_region, geo.map_locset, without=("rL",),
                                    place_map=synapses)
        geo.paint_axial(decor)
        for ion in ions:
            geo.paint_carrier(decor, ion)
        return geo.cable_cell(decor)

    def cell(self, spec: CellSpec, gradients: bool = True, values: dict[str, float] | None = None,
             props: arbor.cable_cell_global_properties | None = None) -> arbor.cable_cell:
        """The gradient cell (or the original one) with parameter values overridden.

        The gradient cell lives on the transformed geometry: map your own probe sites onto
        it with ``model.geometry(spec).equivalent.map_locset``.
        """
        membrane = membrane_of(spec, props or arbor.neuron_cable_properties())
        return self._build(spec, gradients, values, membrane)

    def diffusivity(self, spec: CellSpec, cell: arbor.cable_cell, membrane: Membrane) -> float:
        """One diffusivity [m²/s] that is exact on the *untransformed* cell, from Arbor's
        measured diffusion law (for code that builds its own gradient cell without the
        transform, e.g. the pycat tests).

        Ion diffusion conserves volume while the cable conserves charge, and Arbor 0.12 scales
        diffusion with the CV length, so one diffusivity is exact only for a constant radius
        and equal CVs; other cells are refused rather than given wrong gradients.
        """
        if membrane.rL_regions:
            raise GradgenError("'rL' is painted on a region; one carrier diffusivity cannot follow it",
                               hint="let GradientModel build the gradient cell (geometry transform)")
        ratio = worst_radius_ratio(spec.morphology)
        if ratio - 1.0 > 1e-9:
            raise GradgenError(
                f"the cell's radius changes (largest/smallest {ratio:.3g}): the diffusive gradient "
                "carrier would not follow the voltage and the gradients would be wrong",
                hint="use a constant-radius morphology until the geometry transform is available")
        lengths = [h for h in cv_lengths(cell, spec.morphology) if h > 0]
        if max(lengths) - min(lengths) > 1e-9 * max(lengths):
            raise GradgenError(
                f"CV lengths differ ({min(lengths):g} to {max(lengths):g} µm); the gradient "
                "carrier's diffusivity depends on the CV length in Arbor 0.12",
                hint="use arbor.cv_policy_fixed_per_branch or max_extent on an unbranched cable")
        radius = spec.morphology.branch_segments(0)[0].prox.radius
        return carrier_diffusivity(radius, lengths[0], membrane.rL, membrane.cm)

    # -- simulation

    def simulation(self, spec: CellSpec, sites: Sequence[str], gradients: bool = True,
                   values: dict[str, float] | None = None) -> "SingleCellRun":
        """An ``arbor.simulation`` of one cell with V (and dV/dθ) probes at the CV centres of ``sites``.

        Each site is a location expression; it is moved to the centre of its CV, where
        Arbor's voltage probe and the hub's per-CV dV/dθ describe the same point.
        """
        base = arbor.neuron_cable_properties()
        membrane = membrane_of(spec, base)
        cell = self._build(spec, gradients, values, membrane)
        props = self.properties(gradients, base)
        if gradients and self.carrier_geometry == "exact":
            geo = cell_geometry(spec, membrane).equivalent
            sites = [geo.map_locset(site) for site in sites]
        centres = [cv_centre(cell, site) for site in sites]
        return SingleCellRun(cell, props, centres, len(self.params) if gradients else 0,
                             self.generators(spec, values))

    def simulate(self, spec: CellSpec, sites: Sequence[str], t_end: float, dt: float,
                 gradients: bool = True, values: dict[str, float] | None = None,
                 sample_dt: float | None = None) -> Traces:
        """Run one cell and return V (and dV/dθ) sampled every ``sample_dt`` (default ``dt``)."""
        if gradients:
            warn_for_model(self, spec, dt, values or {})
        return self.simulation(spec, sites, gradients, values).run(t_end, dt, sample_dt)


def _memberships(n: int) -> list[tuple[bool, ...]]:
    return [tuple(bool(bits >> i & 1) for i in range(n)) for bits in range(2**n)]


class OneCellRecipe(arbor.recipe):
    """One cable cell with its global properties, probes and spike inputs, and its simulation,
    which can be reset and run again with new samplers."""

    def __init__(self, cell, props, probes: Sequence, generators: Sequence[arbor.event_generator] = (),
                 seed: int = 0):
        super().__init__()
        self._cell, self._props, self._probes = cell, props, list(probes)
        self._generators, self._seed = list(generators), seed
        self._handles: dict[str, int] = {}

    def num_cells(self) -> int:
        return 1

    def cell_kind(self, gid):
        return arbor.cell_kind.cable

    def cell_description(self, gid):
        return self._cell

    def global_properties(self, kind):
        return self._props

    def probes(self, gid):
        return self._probes

    def event_generators(self, gid):
        return self._generators

    @cached_property
    def sim(self) -> arbor.simulation:
        return arbor.simulation(self, seed=self._seed)

    def sample_run(self, tags: Sequence[str], t_end: float, dt: float, sample_dt: float) -> dict[str, int]:
        """Reset, sample the probes ``tags`` every ``sample_dt`` ms, run; the sampler handles."""
        self.sim.reset()
        for handle in self._handles.values():
            self.sim.remove_sampler(handle)
        schedule = arbor.regular_schedule(0 * U.ms, sample_dt * U.ms, t_end * U.ms)
        self._handles = {tag: self.sim.sample((0, tag), schedule) for tag in tags}
        self.sim.run(t_end * U.ms, dt * U.ms)
        return self._handles


class SingleCellRun(OneCellRecipe):
    """One cell with voltage and hub-state probes at each site."""

    def __init__(self, cell, props, sites: Sequence[str], n_params: int,
                 generators: Sequence[arbor.event_generator] = ()):
        self.sites, self.n_params = list(sites), n_params
        probes, self.tags = [], []
        for i, site in enumerate(self.sites):
            probes.append(arbor.cable_probe_membrane_voltage(site, f"v{i}"))
            self.tags.append(f"v{i}")
            for k in range(n_params):
                probes.append(arbor.cable_probe_density_state(site, HUB_NAME, f"u{k}", f"u{i}_{k}"))
                self.tags.append(f"u{i}_{k}")
        super().__init__(cell, props, probes, generators)

    def run(self, t_end: float, dt: float, sample_dt: float | None = None) -> Traces:
        """Reset, run and return the samples."""
        return self.collect(self.sim, self.sample_run(self.tags, t_end, dt, sample_dt or dt))

    def collect(self, sim: arbor.simulation, handles: dict[str, int]) -> Traces:
        def trace(tag: str) -> np.ndarray:
            samples = sim.samples(handles[tag])
            if len(samples) != 1:
                raise GradgenError(f"probe site {self.sites[int(tag[1:].split('_')[0])]!r} must "
                                   f"name exactly one location (got {len(samples)})")
            return samples[0][0]

        first = trace("v0")
        t = first[:, 0]
        v = np.stack([trace(f"v{i}")[:, 1] for i in range(len(self.sites))])
        dv = None
        if self.n_params:
            dv = np.stack([np.stack([trace(f"u{i}_{k}")[:, 1] for k in range(self.n_params)])
                           for i in range(len(self.sites))])
        check_finite(t, v, dv, self.sites)
        return Traces(t, v, dv)
