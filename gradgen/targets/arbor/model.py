"""Run gradient mechanisms inside an ordinary Arbor model.

The user describes the cell as usual (:mod:`gradgen.targets.arbor.decor`).
:class:`GradientModel` then builds

- the gradient cell: every converted mechanism replaced by its gradient version, split
  where a parameter θ_k is bound to a region (weight w_k = 1 there), the hub on the whole
  cell, and the diffusive gradient ions with a diffusivity that makes ion diffusion equal
  to the cable equation's axial term. Ion diffusion can equal it only on one common
  radius, so the gradient cell is the electrically identical constant-radius cell of
  :mod:`gradgen.targets.arbor.geometry.transform`, built and voltage-checked once per
  :class:`CellSpec`, with the user's regions, locsets and probe sites mapped onto it;
- or the original cell, with parameters overridden, compiled from the original `.mod`
  files — the reference for finite differences.

Sampling returns V and dV/dθ at the probe sites (:class:`Traces`); :mod:`gradgen.losses`
turns them into loss gradients by the chain rule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.manifest import Manifest, MechanismEntry
from gradgen.params import ParamRef
from gradgen.protocol import (
    HUB_NAME,
    PASTED_BLOCK_COMMENT,
    carrier_ion,
    gradient_ions,
    hub_probe_tag,
    hub_state,
    nernst_flag,
    original_name,
    weight,
)
from gradgen.sensitivity.coupling import STORE_DIFFUSIVITY
from gradgen.sensitivity.derive import ContributorSystem
from gradgen.targets.arbor.blowup import check_finite
from gradgen.targets.arbor.build import build_catalogue, build_directory
from gradgen.targets.arbor.decor import CellSpec, Membrane, membrane_of
from gradgen.targets.arbor.derived import DerivedName, base_name
from gradgen.targets.arbor.exact_carrier import exact_cell
from gradgen.targets.arbor.fusion import derive_systems, fused_cell
from gradgen.targets.arbor.geometry.cell import CellGeometry, cell_geometry
from gradgen.targets.arbor.geometry.transform import (
    carrier_diffusivity,
    naive_carrier_paints,
    worst_radius_ratio,
)
from gradgen.targets.arbor.recipe import CellsRecipe, regular_schedule
from gradgen.targets.arbor.sites import cv_centre, cv_lengths
from gradgen.targets.arbor.step_check import warn_for_model
from gradgen.targets.arbor.versions import check_reversal_methods, method_map, nernst_ions, version


@dataclass
class Traces:
    """Samples at the probe sites: ``v[site, t]`` and ``dv[site, k, t]`` (mV per unit θ_k)."""

    t: np.ndarray
    v: np.ndarray
    dv: np.ndarray | None = None


@dataclass
class GradientModel:
    """A converted parameter set: manifest, gradient catalogue and original catalogue."""

    directory: Path
    manifest: Manifest
    carrier_geometry: Literal["exact", "naive"] = "exact"  # "naive": benchmarks only
    vectorize: bool = True  # SIMD build of density mechanisms (targets.arbor.build); False: all scalar
    fusion: bool = True  # simulate with fused mechanisms where they apply (targets.arbor.fusion)
    #: How u_k = dV/dθ_k travels: "exact" (the default: solved on the CV tree inside one
    #: mechanism; targets.arbor.exact_carrier), which falls back to "ion" with a GradgenWarning
    #: for what it does not cover, or "ion" (diffusive carrier ions, the published method;
    #: portable to Arbor GPU builds and to NEURON).
    carrier: Literal["ion", "exact"] = "exact"
    #: Regions where the hub gets extra RANGE values (e.g. the homeostatic error weight);
    #: the rest of the cell gets the hub with its defaults.
    hub_paints: tuple[tuple[str, dict[str, float]], ...] = ()

    @staticmethod
    def load(directory: Path | str, carrier: Literal["ion", "exact"] = "exact") -> "GradientModel":
        if carrier not in ("ion", "exact"):
            raise GradgenError(f"unknown carrier {carrier!r}", hint="carrier='ion' or 'exact'")
        return GradientModel(Path(directory), Manifest.load(directory), carrier=carrier)

    def with_hub_paints(self, paints: Sequence[tuple[str, dict[str, float]]]) -> "GradientModel":
        """This model with the hub painted with extra values on some regions."""
        return dataclasses.replace(self, hub_paints=tuple(paints))

    @cached_property
    def params(self) -> list[ParamRef]:
        return self.manifest.refs

    @cached_property
    def mechanisms(self) -> dict[str, MechanismEntry]:
        """Original name -> manifest entry."""
        return self.manifest.by_original()

    @property
    def defaults(self) -> dict[str, float | None]:
        """θ name -> value in the .mod file (None for event weights)."""
        return self.manifest.defaults

    @property
    def store_ions(self) -> list[str]:
        """Ion-coupling stores (:mod:`gradgen.sensitivity.coupling`)."""
        return self.manifest.coupling.store_ions

    @cached_property
    def gradient_catalogue(self) -> Path:
        return build_directory(self.directory, "gradgen", self.vectorize)

    @cached_property
    def systems(self) -> dict[str, ContributorSystem]:
        """Each mechanism's gradient system, for fused mechanisms (derived once per model)."""
        return derive_systems(self)

    @cached_property
    def exact_systems(self) -> dict[str, ContributorSystem]:
        """The systems in the exact carrier's form (σ updated with u^{n+1}; derived once)."""
        return derive_systems(self, direct=True)

    @cached_property
    def exact_refusal(self) -> str | None:
        """Why some mechanism has no exact-carrier form (None if every one has)."""
        try:
            self.exact_systems
        except GradgenError as error:
            return error.message
        return None

    @cached_property
    def pasted_initial_solves(self) -> list[str]:
        """Mechanisms whose gradient version pastes the original's initial SOLVE
        (:mod:`gradgen.nmodl.initial_solve`), read once from the converted files."""
        return [name for name, entry in self.mechanisms.items()
                if PASTED_BLOCK_COMMENT in (self.directory / f"{entry.gradient}.mod").read_text()]

    @cached_property
    def fused_catalogues(self) -> dict[tuple[str, ...], Path]:
        """Built fused catalogues by their mechanisms (filled by :mod:`.fusion`)."""
        return {}

    @cached_property
    def original_catalogue(self) -> Path:
        sources = {f"{name}.mod": (self.directory / m.source_copy).read_text()
                   for name, m in self.mechanisms.items()}
        return build_catalogue(sources, "original", self.vectorize)

    # -- properties

    def properties(self, gradients: bool, base: arbor.cable_cell_global_properties | None = None,
                   diffusivity: float = 1e-9) -> arbor.cable_cell_global_properties:
        props = base or arbor.neuron_cable_properties()
        if gradients:
            props.catalogue.extend(arbor.load_catalogue(str(self.gradient_catalogue)), "")
            if any(m.bystander for m in self.mechanisms.values()):  # they run as their originals
                props.catalogue.extend(arbor.load_catalogue(str(self.original_catalogue)), original_name(""))
            for ion in gradient_ions(len(self.params)):
                props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM,
                              rev_pot=0 * U.mV, diff=diffusivity * U.m2 / U.s)
            for ion in self.store_ions:
                props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM,
                              rev_pot=0 * U.mV, diff=STORE_DIFFUSIVITY * U.m2 / U.s)
        else:
            props.catalogue.extend(arbor.load_catalogue(str(self.original_catalogue)), original_name(""))
        return props

    # -- cells

    def densities(self, spec: CellSpec, gradients: bool, values: dict[str, float],
                   membrane: Membrane) -> list[tuple[str, arbor.density]]:
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise GradgenError(f"unknown parameter(s) {', '.join(sorted(unknown))}",
                               hint="known: " + ", ".join(p.name for p in self.params))
        painted = {base_name(mech) for _, mech, _ in spec.decor.densities()}
        painted |= {base_name(mech) for mech in spec.decor.synapses().values()}
        painted |= {base_name(mech) for mech in spec.decor.junctions().values()}
        painted |= {base_name(mech) for mech in spec.decor.voltage_processes()}
        for ref in self.params:
            if ref.mechanism not in painted:
                raise GradgenError(f"parameter '{ref.name}': mechanism '{ref.mechanism}' is not "
                                   "painted or placed (with a label) on the cell")
            if ref.region and ref.region not in spec.labels:
                raise GradgenError(f"parameter '{ref.name}': the cell has no region label "
                                   f"'{ref.region}'", hint="its labels: " + ", ".join(sorted(
                                       spec.labels.keys())) if len(spec.labels) else "it has no labels")
        nernst = nernst_ions(spec.decor.ions + [((ion,), kw) for ion, kw in spec.ions.items()])
        out: list[tuple[str, arbor.density]] = []
        for region, painted_name, user_values in spec.decor.densities():
            derived = DerivedName.parse(painted_name)
            mech = derived.base
            if mech not in self.mechanisms:
                raise GradgenError(
                    f"mechanism '{mech}' is painted but was not converted: its states would "
                    "carry no sensitivities and the gradients would be wrong",
                    hint="add its .mod file to `gradgen convert`")
            refs = [(k, p) for k, p in enumerate(self.params) if p.mechanism == mech]
            regions = sorted({p.region for _, p in refs if p.region})
            for inside in _memberships(len(regions)):
                # a bare label must be named as (region "x") inside intersect: Arbor cannot
                # tell a quoted label's kind there
                piece = f"(region {region})" if regions and region.strip().startswith('"') else region
                for reg, is_in in zip(regions, inside):
                    term = f'(region "{reg}")'
                    piece = f"(intersect {piece} {term if is_in else f'(complement {term})'})"
                vals = {**derived.globals, **user_values}
                for k, ref in refs:
                    applies = ref.region is None or inside[regions.index(ref.region)]
                    if applies and ref.name in values:
                        vals[ref.parameter] = values[ref.name]
                    if gradients and applies:
                        vals[weight(k)] = 1.0
                if gradients:  # the reversal potential follows the concentration (nernst)
                    vals.update({nernst_flag(ion): 1.0 for ion in self.mechanisms[mech].nernst if ion in nernst})
                out.append((piece, version(self.mechanisms[mech], derived, vals, gradients, arbor.density)))
        if gradients:
            out += self._hub(membrane)
        return out

    def _hub(self, membrane: Membrane) -> list[tuple[str, arbor.density]]:
        """The hub on the whole cell, with the extra values of :attr:`hub_paints` where given,
        and each region's cm where cm is painted per region (Arbor averages it per CV by area,
        as it does the capacitance)."""
        if membrane.cm_regions:
            if self.hub_paints:
                raise GradgenError("cm painted per region and a homeostatic hub cannot be combined yet",
                                   hint="set one cm with decor.set_property(cm=...)")
            return [(region, arbor.density(HUB_NAME, {"cm": cm}))
                    for region, cm in disjoint_paints([("(all)", membrane.cm), *membrane.cm_regions])]
        if not self.hub_paints:
            return [("(all)", arbor.density(HUB_NAME, {"cm": membrane.cm}))]
        rest = "(all)"
        out = []
        for region, values in self.hub_paints:
            rest = f"(difference {rest} {region})"
            out.append((region, arbor.density(HUB_NAME, {"cm": membrane.cm, **values})))
        return [(rest, arbor.density(HUB_NAME, {"cm": membrane.cm}))] + out

    def synapse_map(self, gradients: bool, values: dict[str, float]) -> Callable[[Any], Any]:
        """Replaces each placed synapse or gap junction, and each painted voltage process, of a
        converted mechanism by its gradient or original version."""
        def replace(what: Any) -> Any:
            if not isinstance(what, (arbor.synapse, arbor.junction, arbor.voltage_process)):
                return what
            kind = type(what)
            derived = DerivedName.parse(what.mech.name)
            mech = derived.base
            if mech not in self.mechanisms:
                if gradients:
                    raise GradgenError(
                        f"synapse '{mech}' is placed but was not converted: its current would "
                        "carry no sensitivities and the gradients would be wrong",
                        hint="add its .mod file to `gradgen convert`")
                return what
            vals = {**derived.globals, **dict(what.mech.values)}
            for k, ref in enumerate(self.params):
                if ref.mechanism != mech:
                    continue
                if ref.region:
                    raise GradgenError(f"parameter '{ref.name}': a point, junction or voltage process "
                                       "parameter cannot be bound "
                                       "to a region", hint=f"use {mech}.{ref.parameter}")
                if ref.name in values and ref.parameter in self.mechanisms[mech].parameters:
                    vals[ref.parameter] = values[ref.name]
                if gradients:
                    vals[weight(k)] = 1.0
            return version(self.mechanisms[mech], derived, vals, gradients, kind)
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
                if ref.mechanism == base_name(targets[source.label]) and ref.name in values \
                        and ref.parameter not in self.mechanisms[ref.mechanism].parameters:
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
        densities = self.densities(spec, gradients, values or {}, membrane)
        synapses = self.synapse_map(gradients, values or {})
        check_reversal_methods(spec.decor.ions + [((ion,), kw) for ion, kw in spec.ions.items()], self.mechanisms)
        methods = method_map(self.mechanisms, gradients)
        if not gradients:
            return spec.build(spec.decor.to_arbor(densities, place_map=synapses, method_map=methods))
        ions = [carrier_ion(k) for k in range(len(self.params))]
        if self.carrier_geometry == "naive":
            if membrane.rL_regions or membrane.cm_regions:
                raise GradgenError("the naive carrier geometry assumes one rL and one cm")
            decor = spec.decor.to_arbor(densities, place_map=synapses, method_map=methods)
            paints = naive_carrier_paints(spec.morphology, spec.labels,
                                          spec.cv_policy or arbor.default_cv_policy(),
                                          membrane.rL, membrane.cm)
            for ion in ions:
                for region, d in paints:
                    decor.paint(region, ion=ion, diff=d * U.m2 / U.s)
            return spec.build(decor)
        self.refuse_diam_readers(spec)
        geo = cell_geometry(spec, membrane).equivalent
        # rL is the transform's: it paints every piece with the rL that keeps its resistance
        decor = spec.decor.to_arbor(densities, geo.map_region, geo.map_locset, without=("rL",),
                                    place_map=synapses, method_map=methods)
        geo.paint_axial(decor)
        for ion in ions:
            geo.paint_carrier(decor, ion)
        return geo.cable_cell(decor)

    def refuse_diam_readers(self, spec: CellSpec) -> None:
        """Mechanisms that read diam cannot run on the changed-radius equivalent cell."""
        readers = sorted({base_name(m) for _, m, _ in spec.decor.densities()
                          if base_name(m) in self.mechanisms and self.mechanisms[base_name(m)].reads_diam})
        if readers and worst_radius_ratio(spec.morphology) > 1.0 + 1e-9:
            raise GradgenError(
                f"{', '.join(readers)} read(s) diam, which the gradient cell's constant-radius "
                "equivalent geometry changes (CV areas are kept, diameters are not)",
                hint="use area instead of diam, or a constant-radius morphology")

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
        if membrane.rL_regions or membrane.cm_regions:
            raise GradgenError("'rL' or 'cm' is painted on a region; one carrier diffusivity cannot follow it",
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
        for ion, settings in spec.ions.items():
            base.set_ion(ion, **settings)
        membrane = membrane_of(spec, base)
        exact = exact_cell(self, spec, values, membrane, sites) if gradients and self.carrier == "exact" else None
        if exact is not None:
            cell, props, centres, hubs = exact
            return SingleCellRun(cell, props, centres, len(self.params), self.generators(spec, values), hubs=hubs,
                                 exact=True)
        if gradients and self.carrier_geometry == "exact":
            geo = cell_geometry(spec, membrane).equivalent
            sites = [geo.map_locset(site) for site in sites]
        fused = fused_cell(self, spec, values, membrane, sites) if gradients and self.fusion else None
        if fused is not None:
            cell, props, centres, hubs = fused
        else:
            cell = self._build(spec, gradients, values, membrane)
            props = self.properties(gradients, base)
            centres, hubs = [cv_centre(cell, site) for site in sites], None
        return SingleCellRun(cell, props, centres, len(self.params) if gradients else 0,
                             self.generators(spec, values), hubs=hubs,
                             gap_junctions=[j.connection(0) for j in spec.gap_junctions])

    def simulate(self, spec: CellSpec, sites: Sequence[str], t_end: float, dt: float,
                 gradients: bool = True, values: dict[str, float] | None = None,
                 sample_dt: float | None = None) -> Traces:
        """Run one cell and return V (and dV/dθ) sampled every ``sample_dt`` (default ``dt``)."""
        run = self.simulation(spec, sites, gradients, values)
        if gradients and not run.exact:  # the exact carrier has no coarse-dt error to warn of
            warn_for_model(self, spec, dt, values or {})
        return run.run(t_end, dt, sample_dt)


def disjoint_paints(paints: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Region paints in order, later ones overriding earlier ones, as disjoint regions (a
    density mechanism may be painted only once on any part of the cell)."""
    def named(region: str) -> str:  # a bare label inside join/difference: Arbor needs its kind
        return f"(region {region})" if region.strip().startswith('"') else region

    out = []
    for j, (region, value) in enumerate(paints):
        later = [named(r) for r, _ in paints[j + 1:]]
        rest = later[0] if len(later) == 1 else f"(join {' '.join(later)})"
        out.append((f"(difference {named(region)} {rest})" if later else region, value))
    return out


def _memberships(n: int) -> list[tuple[bool, ...]]:
    return [tuple(bool(bits >> i & 1) for i in range(n)) for bits in range(2**n)]


class SingleCellRun(CellsRecipe):
    """One cell with voltage (and hub-state) probes at each site."""

    def __init__(self, cell, props, sites: Sequence[str], n_params: int,
                 generators: Sequence[arbor.event_generator] = (), threads: int = 1,
                 hubs: Sequence[str] | None = None,
                 gap_junctions: Sequence[arbor.gap_junction_connection] = (), exact: bool = False):
        self.sites, self.n_params = list(sites), n_params
        self.exact = exact  # u_k from the exact carrier (targets.arbor.exact_carrier)
        # the mechanism that publishes u_k at each site: the hub, or a fused mechanism
        self.hubs = list(hubs) if hubs else [HUB_NAME] * len(self.sites)
        probes, self.tags = [], []
        for i, site in enumerate(self.sites):
            probes.append(arbor.cable_probe_membrane_voltage(site, f"v{i}"))
            self.tags.append(f"v{i}")
            for k in range(n_params):
                probes.append(arbor.cable_probe_density_state(site, self.hubs[i], hub_state(k),
                                                              hub_probe_tag(i, k)))
                self.tags.append(hub_probe_tag(i, k))
        super().__init__([cell], props, [probes], [generators], threads=threads,
                         gap_junctions=[gap_junctions])

    def run(self, t_end: float, dt: float, sample_dt: float | None = None) -> Traces:
        """Reset, run and return the samples."""
        self.sample_run([(0, tag) for tag in self.tags], t_end, dt, regular_schedule(sample_dt or dt, t_end))

        def trace(i: int, tag: str) -> np.ndarray:
            return self.samples((0, tag), f"probe site {self.sites[i]!r}")[:, 1]

        t = self.samples((0, "v0"), f"probe site {self.sites[0]!r}")[:, 0]
        v = np.stack([trace(i, f"v{i}") for i in range(len(self.sites))])
        dv = None
        if self.n_params:
            dv = np.stack([np.stack([trace(i, hub_probe_tag(i, k)) for k in range(self.n_params)])
                           for i in range(len(self.sites))])
        check_finite(t, v, dv, self.sites)
        return Traces(t, v, dv)
