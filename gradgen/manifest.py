"""The manifest of a converted model (``gradients.json``): built here, read here.

``convert`` and ``convert_homeostatic`` describe what they wrote — the parameters θ with
their carrier ions, each mechanism with its gradient version and states, the ion coupling
and the homeostatic settings — and every reader (the runtime, homeostasis, coverage, the
command line) loads it back through :meth:`Manifest.load`, so the format has one owner.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from gradgen.errors import GradgenError
from gradgen.nmodl.ir import Mechanism
from gradgen.nmodl.lowered import BUILTIN_NAMES, LoweredMechanism
from gradgen.params import ParamRef
from gradgen.protocol import (
    MANIFEST,
    carrier_ion,
    gradient_name,
    hub_state,
    original_name,
    parameter_ion,
    sens,
    theta_state,
)
from gradgen.version import __version__


@dataclass(frozen=True)
class ParameterEntry:
    """θ_k: what it binds to, its default and the names that carry its sensitivity."""

    name: str
    mechanism: str
    parameter: str
    region: str | None
    default: float | None  # None for an event weight, which the cell's inputs carry
    ion: str
    hub_state: str
    parameter_ion: str | None = None  # homeostatic models: the ion holding the learned θ
    theta_state: str | None = None  # homeostatic models: the hub's STATE copy of θ

    @property
    def ref(self) -> ParamRef:
        return ParamRef(self.mechanism, self.parameter, self.region)


@dataclass(frozen=True)
class MechanismEntry:
    """One input mechanism and its gradient version."""

    original: str
    gradient: str
    kind: str  # "density", "point" or "junction"
    source: str
    source_copy: str  # path of the original's copy, relative to the output directory
    states: list[str]
    parameters: list[str]
    sensitivities: dict[str, list[str]]
    reads_diam: bool = False
    #: parameters the original sets only for the whole mechanism (not RANGE: Arbor sets them
    #: through a derived name, ``mech/param=value``); the gradient version has them RANGE
    globals: list[str] = field(default_factory=list)
    #: a mechanism that cannot move V (:mod:`gradgen.sensitivity.bystanders`): the gradient
    #: cell runs its original, ``gradient`` names that
    bystander: bool = False
    #: ions whose reversal potential the gradient version follows through the internal
    #: concentration where the cell uses Arbor's nernst method (:mod:`gradgen.sensitivity.nernst`)
    nernst: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CouplingEntry:
    """Ion quantities passed between mechanisms, and the store ions that carry them."""

    currents: list[str] = field(default_factory=list)
    concentrations: list[str] = field(default_factory=list)
    store_ions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    """Everything a runtime needs to know about a converted model."""

    hub: str
    scheme: str
    parameters: list[ParameterEntry]
    mechanisms: list[MechanismEntry]
    coupling: CouplingEntry = field(default_factory=CouplingEntry)
    homeostatic: dict[str, Any] | None = None
    gradgen_version: str = __version__

    @property
    def refs(self) -> list[ParamRef]:
        return [p.ref for p in self.parameters]

    @property
    def defaults(self) -> dict[str, float | None]:
        return {p.name: p.default for p in self.parameters}

    def by_original(self) -> dict[str, MechanismEntry]:
        return {m.original: m for m in self.mechanisms}

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data = {"gradgen_version": data.pop("gradgen_version"), **data}
        if self.homeostatic is None:
            del data["homeostatic"]
        return json.dumps(data, indent=2, allow_nan=False) + "\n"

    @staticmethod
    def load(directory: Path | str) -> "Manifest":
        """Read ``directory/gradients.json``; a missing or malformed file is a clear error."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise GradgenError(f"{path} not found", hint="run `gradgen convert` first")
        try:
            data = json.loads(path.read_text())
            return Manifest(
                hub=data["hub"], scheme=data["scheme"],
                parameters=[ParameterEntry(**p) for p in data["parameters"]],
                mechanisms=[MechanismEntry(**m) for m in data["mechanisms"]],
                coupling=CouplingEntry(**data.get("coupling", {})),
                homeostatic=data.get("homeostatic"),
                gradgen_version=data.get("gradgen_version", "unknown"))
        except (ValueError, KeyError, TypeError) as err:
            raise GradgenError(f"{path} is not a gradgen manifest ({type(err).__name__}: {err})",
                               hint="convert again into a new directory") from None


def mechanism_entry(low: LoweredMechanism, n_params: int, nernst: Sequence[str] = ()) -> MechanismEntry:
    """The manifest entry of one converted input mechanism (``nernst``: see MechanismEntry)."""
    return MechanismEntry(
        original=low.name, gradient=gradient_name(low.name), kind=low.mechanism.kind,
        source=str(low.mechanism.source), source_copy=f"original/{low.name}.mod",
        states=list(low.states), parameters=low.parameter_names(),
        sensitivities={s: [sens(s, k) for k in range(n_params)] for s in low.states},
        reads_diam=reads_diam(low), globals=arbor_globals(low), nernst=list(nernst))


def arbor_globals(low: LoweredMechanism) -> list[str]:
    """Parameters not listed in RANGE: one value per mechanism for modcc (GLOBAL or unlisted)."""
    return [p for p in low.parameter_names() if p not in low.mechanism.range_names]


def bystander_entry(mech: Mechanism) -> MechanismEntry:
    """The manifest entry of a mechanism that cannot move V: it runs as its original."""
    ion_vars = {var for ion in mech.ions for var in ion.read + ion.write}
    parameters = [p.name for p in mech.parameters if p.name not in BUILTIN_NAMES | ion_vars]
    return MechanismEntry(
        original=mech.name, gradient=original_name(mech.name), kind=mech.kind,
        source=str(mech.source), source_copy=f"original/{mech.name}.mod",
        states=[s.name for s in mech.states],
        parameters=parameters, sensitivities={},
        globals=[p for p in parameters if p not in mech.range_names], bystander=True)


def parameter_entries(params: Sequence[ParamRef], defaults: Sequence[float | None],
                      homeostatic: bool = False) -> list[ParameterEntry]:
    """The manifest entries of θ, with the homeostatic names when θ is learned online."""
    return [ParameterEntry(name=p.name, mechanism=p.mechanism, parameter=p.parameter, region=p.region,
                           default=d, ion=carrier_ion(k), hub_state=hub_state(k),
                           parameter_ion=parameter_ion(k) if homeostatic else None,
                           theta_state=theta_state(k) if homeostatic else None)
            for k, (p, d) in enumerate(zip(params, defaults))]


def reads_diam(low: LoweredMechanism) -> bool:
    """Whether any expression reads the CV diameter (which the geometry transform changes)."""
    exprs = [c.expr for c in low.currents] + list(low.derivatives.values())
    exprs += list(low.initial.values()) + list(low.equations) + list(low.events.values())
    exprs += list(low.initial_equations.values()) + list(low.explicit.values())
    return any(s.name == "diam" for e in exprs for s in e.free_symbols)
