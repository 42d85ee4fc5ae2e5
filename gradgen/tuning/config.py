"""`gradgen tune CONFIG.toml`: read and validate a tuning configuration.

Paths in the file are relative to the file. Every mistake a user can make (unknown
mechanism, parameter or region, missing file, bad value) is a :class:`GradgenError` that
names the file, the line of the offending entry where it can be found, and a hint.
See ``examples/io.toml`` for a complete, commented configuration.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arbor

from gradgen.errors import GradgenError, SourcePos
from gradgen.losses import LOSSES
from gradgen.nmodl.lower import lower_file
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.targets.arbor.morphology import REGIONS, LoadedCell, cv_policy, load_swc
from gradgen.tuning.keys import check_keys, key_pos
from gradgen.tuning.params import TRANSFORMS
from gradgen.tuning.problem import Protocol
from gradgen.tuning.protocols import read_protocols, read_target_files
from gradgen.tuning.recordings import TargetFile

_SECTIONS = {"model", "simulation", "protocol", "loss", "tune", "target", "optimizer", "output"}
_METHODS = ("adam", "cmaes", "de", "lbfgs", "lm")
_TARGETS = ("arbor", "neuron")  # the simulator that runs the model ([model] target)
# units of a maximal conductance (or permeability): the "auto" transform tunes them in log space
_CONDUCTANCE_UNITS = re.compile(r"^[munp]?(S|mho|siemens)/cm2$|^cm/s$", re.IGNORECASE)


@dataclass
class TuneConfig:
    """A validated configuration; paths are absolute."""

    path: Path
    morphology: Path
    cv_policy: str
    mechanisms: list[LoweredMechanism]
    paint: dict[str, list[str]]  # region -> mechanism names
    values: dict[str, float]  # "mech.param" -> value, overriding the .mod defaults
    v_init: float
    cm: float
    rL: float
    probe: str  # a location expression
    t_end: float
    dt: float
    sample_dt: float
    windows: list[tuple[float, float]]
    parameters: list[str]  # tuned names, in order
    ties: dict[str, list[str]]  # tuned name -> model parameters it sets
    transforms: dict[str, str]
    bounds: dict[str, tuple[float, float]]
    target_values: dict[str, float] = field(default_factory=dict)
    target_files: dict[str, TargetFile] = field(default_factory=dict)  # protocol name -> file
    protocols: list[Protocol] = field(default_factory=list)  # [[protocol]]; none: [simulation]
    protocol_weights: dict[str, float] = field(default_factory=dict)
    loss: str = "least_squares"
    method: str = "adam"
    iterations: int = 300
    learning_rate: float = 1e-2
    population: int = 20
    sigma0: float = 0.1
    seed: int = 1
    seconds: float = math.inf
    stop_rms_mV: float = 0.0
    distributed: str | None = None  # cmaes, de: "local" (a LocalCluster) or a scheduler address
    workers: int = 2  # processes of the LocalCluster
    output: Path = Path("tuning-output")
    target: str = "arbor"  # "neuron": probe and stimulus locations are region names
    carrier: str = "exact"  # how dV/dθ travels: "exact" or "ion" (GradientModel.carrier)

    def copies(self, name: str) -> list[str]:
        return self.ties.get(name, [name])

    def thetas(self) -> list[str]:
        return [c for name in self.parameters for c in self.copies(name)]


class _Reader:
    """Typed access to the TOML tables with errors that point into the file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.text = path.read_text()
        except FileNotFoundError:
            raise GradgenError(f"config file {path} not found") from None
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as error:
            raise GradgenError(f"{path}: not valid TOML: {error}") from None

    def pos(self, needle: str) -> SourcePos | None:
        for number, line in enumerate(self.text.splitlines(), start=1):
            col = line.find(needle)
            if col >= 0 and not line.lstrip().startswith("#"):
                return SourcePos(str(self.path), number, col + 1)
        return None

    def error(self, message: str, needle: str, hint: str | None = None) -> GradgenError:
        pos = self.pos(needle)
        return GradgenError(message if pos else f"{self.path}: {message}", pos, hint)

    def key_error(self, message: str, table: str, key: str, hint: str | None = None) -> GradgenError:
        """An error at ``key = ...`` inside ``[table]`` (first mention of ``key`` if not found)."""
        pos = key_pos(self.text, str(self.path), table, key)
        return GradgenError(message, pos, hint) if pos else self.error(message, key, hint)

    def table(self, name: str, required: bool = True) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            if required:
                raise GradgenError(f"{self.path}: missing section [{name}]",
                                   hint="see examples/io.toml for a complete configuration")
            return {}
        if not isinstance(value, dict):
            raise self.error(f"'{name}' must be a table", name)
        return value

    def number(self, table: dict, section: str, key: str, default: float | None = None,
               positive: bool = False, finite: bool = True) -> float:
        value = table.get(key, default)
        if value is None:
            raise GradgenError(f"{self.path}: [{section}] needs '{key}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.key_error(f"[{section}] {key} must be a number, not {value!r}", section, key)
        if math.isnan(value) or (finite and math.isinf(value)):
            raise self.key_error(f"[{section}] {key} must be a finite number, not {value}", section, key)
        if positive and not value > 0:
            raise self.key_error(f"[{section}] {key} must be positive", section, key)
        return float(value)

    def integer(self, table: dict, section: str, key: str, default: int, positive: bool = False) -> int:
        value = self.number(table, section, key, default, positive)
        if value != int(value) or isinstance(table.get(key), float):
            raise self.key_error(f"[{section}] {key} must be a whole number, not {table.get(key)!r}",
                                 section, key)
        return int(value)

    def file(self, value: Any, key: str) -> Path:
        if not isinstance(value, str):
            raise self.error(f"'{key}' must be a path string", key)
        path = (self.path.parent / value).resolve()
        if not path.is_file():
            raise self.error(f"{key}: file {value} not found (looked for {path})", value,
                             hint="paths are relative to the config file")
        return path


def load_config(path: Path | str) -> TuneConfig:
    """Read ``path`` and check it against the model it describes."""
    r = _Reader(Path(path).resolve())
    unknown = set(r.data) - _SECTIONS
    if unknown:
        name = sorted(unknown)[0]
        raise r.error(f"unknown section [{name}]", name, hint="sections: " + ", ".join(sorted(_SECTIONS)))
    check_keys(r.data, r.text, str(r.path))
    model = r.table("model")
    morphology = r.file(model.get("morphology"), "morphology")
    cell = load_swc(morphology)
    policy = str(model.get("cv_policy", "branch:1"))
    try:
        cv_policy(policy)
    except GradgenError as error:
        raise r.error(error.message, policy, error.hint) from None
    mod_files = model.get("mechanisms")
    if not isinstance(mod_files, list) or not mod_files:
        raise r.error("[model] mechanisms must list the .mod files", "mechanisms")
    mechanisms = [lower_file(r.file(f, "mechanisms")) for f in mod_files]
    by_name = {m.name: m for m in mechanisms}

    paint = r.table("model").get("paint")
    if not isinstance(paint, dict) or not paint:
        raise r.error("[model.paint] must map regions to mechanism lists", "paint",
                      hint='e.g. soma = ["io_soma"]')
    for region, names in paint.items():
        if region not in REGIONS:
            raise r.error(f"[model.paint] unknown region '{region}'", region,
                          hint="regions: " + ", ".join(REGIONS))
        if cell.region_is_empty(region):
            raise r.error(f"[model.paint] region '{region}' is empty in {morphology.name}", region,
                          hint="its SWC file has no samples with that tag")
        if not isinstance(names, list):
            raise r.error(f"[model.paint] {region} must be a list of mechanism names", region)
        for name in names:
            if name not in by_name:
                raise r.error(f"[model.paint] {region}: unknown mechanism '{name}'", name,
                              hint="mechanisms from [model] mechanisms: " + ", ".join(by_name))

    def known_parameter(name: str, where: str) -> None:
        mech, _, param = name.partition(".")
        if mech not in by_name:
            raise r.error(f"{where}: '{name}' names no known mechanism", name,
                          hint="write mech.param; mechanisms: " + ", ".join(by_name))
        if param not in by_name[mech].parameter_names():
            raise r.error(f"{where}: unknown parameter '{name}'", name,
                          hint=f"{mech} has " + ", ".join(by_name[mech].parameter_names()))
        if not any(mech in names for names in paint.values()):
            raise r.error(f"{where}: mechanism '{mech}' of '{name}' is not painted", name)

    values = model.get("values", {})
    for name, value in values.items():
        known_parameter(name, "[model.values]")
        r.number(values, "model.values", name)

    sim = r.table("simulation")
    windows = sim.get("windows", [])
    if not isinstance(windows, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(_is_finite_number(x) for x in w)
            and w[0] < w[1] for w in windows):
        raise r.key_error("[simulation] windows must be a list of [start, stop] pairs (ms) of finite "
                          "numbers with start < stop", "simulation", "windows")

    tune = r.table("tune")
    parameters = tune.get("parameters")
    if not isinstance(parameters, list) or not parameters:
        raise r.error("[tune] parameters must list what to tune", "parameters")
    ties = {k: list(v) for k, v in tune.get("tie", {}).items()}
    for name, copies in ties.items():
        for copy in copies:
            known_parameter(copy, f"[tune.tie] {name}")
    for name in parameters:
        if name not in ties:
            known_parameter(name, "[tune] parameters")
    transform = tune.get("transform", "auto")
    transforms = {name: tune.get("transforms", {}).get(name, transform) for name in parameters}
    for name, kind in transforms.items():
        if kind == "auto":
            transforms[name] = _auto_transform(name, ties.get(name, [name]), by_name, values)
    for name in list(tune.get("transforms", {})) + list(tune.get("bounds", {})):
        if name not in parameters:
            raise r.error(f"[tune] '{name}' has a transform or bounds but is not tuned", name)
    for name, kind in transforms.items():
        if kind not in TRANSFORMS:
            raise r.error(f"[tune] unknown transform '{kind}' for '{name}'", kind,
                          hint="use one of auto, " + ", ".join(TRANSFORMS))
    bounds = {}
    for name, pair in tune.get("bounds", {}).items():
        if not isinstance(pair, list) or len(pair) != 2 or not all(
                _is_number(x) and not math.isnan(x) for x in pair) or not pair[0] < pair[1]:
            raise r.key_error(f"[tune.bounds] {name} must be [low, high], two numbers with low < high",
                              "tune.bounds", name, hint="use -inf or inf for no bound")
        bounds[name] = (float(pair[0]), float(pair[1]))

    windows = [(float(a), float(b)) for a, b in windows]
    simulator = str(model.get("target", "arbor"))
    if simulator not in _TARGETS:
        raise r.error(f"[model] unknown target '{simulator}'", simulator, hint="targets: " + ", ".join(_TARGETS))
    location = (lambda text: _region(text, r)) if simulator == "neuron" else (lambda text: _probe(text, cell, r))
    protocols, protocol_weights = read_protocols(r, sim, windows, location)
    target = r.table("target")
    if sum(k in target for k in ("values", "file", "files")) != 1:
        raise r.error("[target] needs exactly one of 'values' (known parameters), 'file' or "
                      "'files' (one NPZ per protocol)", "[target]")
    target_values = target.get("values", {})
    if not isinstance(target_values, dict):
        raise r.error("[target] values must be a table of parameter = value", "values")
    for name in target_values:
        r.number(target_values, "target.values", name)
        if name not in parameters and name not in [c for cs in ties.values() for c in cs]:
            known_parameter(name, "[target] values")
            raise r.error(f"[target] values: '{name}' is not tuned", name,
                          hint="a target made from known parameters may change tuned ones only; "
                               "fixed values belong in [model.values]")
    main = Protocol(r.number(sim, "simulation", "t_end", positive=True),
                    r.number(sim, "simulation", "dt", 0.025, True),
                    r.number(sim, "simulation", "sample_dt", 1.0, True), tuple(windows))
    target_files = read_target_files(r, target, protocols, main) if "values" not in target else {}

    loss = r.table("loss", required=False).get("kind", "least_squares")
    if loss not in LOSSES:
        raise r.error(f"[loss] unknown kind '{loss}'", str(loss), hint="use one of " + ", ".join(LOSSES))
    opt = r.table("optimizer", required=False)
    method = opt.get("method", "adam")
    if method not in _METHODS:
        raise r.error(f"[optimizer] unknown method '{method}'", str(method),
                      hint="use one of " + ", ".join(_METHODS))
    distributed = opt.get("distributed")
    if distributed is not None and (not isinstance(distributed, str) or method not in ("cmaes", "de")):
        raise r.error("[optimizer] distributed must be \"local\" or a scheduler address, for "
                      "cmaes or de", "distributed", hint='e.g. distributed = "local"')
    carrier = model.get("carrier", "exact")
    if carrier not in ("ion", "exact"):
        raise r.error(f"[model] unknown carrier {carrier!r}", str(carrier), hint='carrier = "ion" or "exact"')
    out = r.table("output", required=False)
    return TuneConfig(
        carrier=carrier, path=r.path, morphology=morphology, cv_policy=policy, mechanisms=mechanisms, paint=paint,
        values={k: float(v) for k, v in values.items()},
        v_init=r.number(model, "model", "v_init", -65.0), cm=r.number(model, "model", "cm", 1.0, True),
        rL=r.number(model, "model", "rL", 100.0, True),
        probe=location(str(model.get("probe", "soma"))), target=simulator,
        t_end=r.number(sim, "simulation", "t_end", positive=True),
        dt=r.number(sim, "simulation", "dt", 0.025, True),
        sample_dt=r.number(sim, "simulation", "sample_dt", 1.0, True),
        windows=windows, protocols=protocols, protocol_weights=protocol_weights,
        parameters=list(parameters), ties=ties, transforms=transforms, bounds=bounds,
        target_values={k: float(v) for k, v in target_values.items()}, target_files=target_files,
        loss=loss, method=method, iterations=r.integer(opt, "optimizer", "iterations", 300, True),
        learning_rate=r.number(opt, "optimizer", "learning_rate", 1e-2, True),
        population=r.integer(opt, "optimizer", "population", 20, True),
        sigma0=r.number(opt, "optimizer", "sigma0", 0.1, True),
        seed=r.integer(opt, "optimizer", "seed", 1),
        seconds=r.number(opt, "optimizer", "seconds", math.inf, True, finite=False),
        stop_rms_mV=r.number(opt, "optimizer", "stop_rms_mV", 0.0),
        distributed=distributed, workers=r.integer(opt, "optimizer", "workers", 2, True),
        output=(r.path.parent / str(out.get("directory", "tuning-output"))).resolve(),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _auto_transform(name: str, copies: list[str], mechanisms: dict[str, LoweredMechanism],
                    values: dict[str, float]) -> str:
    """``log`` for a conductance (or permeability) that starts positive, ``shift`` for a
    potential (mV), else ``scaled``.

    LM on the IO cell stalled in scaled space and reached 0.5 mV in a few runs in log space
    (issue 12); log also keeps a conductance positive and makes steps relative. Reversal
    potentials in scaled space (one unit of z = the start value, 10 mV for V_l, 120 mV for
    V_Ca) stalled LM on C4A with 17 parameters at 2.6 mV after 20 runs; with ``shift`` (10 mV
    per unit) it reached 0.5 mV (docs/io.md).
    """
    units = set()
    for copy in copies:
        mech, _, param = copy.partition(".")
        variable = next(v for v in mechanisms[mech].parameters if v.name == param)
        start = values.get(copy, variable.value)
        unit = (variable.unit or "").replace(" ", "")
        if _CONDUCTANCE_UNITS.match(unit) and start is not None and start > 0:
            units.add("log")
        elif unit == "mV":
            units.add("shift")
        else:
            units.add("scaled")
    return units.pop() if len(units) == 1 else "scaled"


def _region(text: str, r: _Reader) -> str:
    """A location for the NEURON target: a region name (the middle of its first section)."""
    if text not in REGIONS:
        raise r.error(f"location {text!r}: with target = \"neuron\" a location is a region name", text,
                      hint="regions: " + ", ".join(REGIONS))
    return text


def _probe(text: str, cell: LoadedCell, r: _Reader) -> str:
    """A region name means its middle (of its first piece where dendrites cut it into
    several, as in reconstructions); anything else is a location expression."""
    bare = arbor.cable_cell(cell.morphology, arbor.decor(), cell.labels)
    if text not in REGIONS:
        try:
            found = bare.locations(text)
        except RuntimeError as error:  # Arbor's parser: "Unexpected symbol ... at :1:1"
            raise r.error(f"[model] probe {text!r} is neither a region nor a location expression "
                          f"({str(error).splitlines()[0]})", "probe",
                          hint="regions: " + ", ".join(REGIONS) + '; or e.g. "(location 0 0.5)"') from None
        if len(found) != 1:
            raise r.error(f"[model] probe {text!r} names {len(found)} locations, not one", "probe")
        return text
    first = bare.locations(f'(on-components 0.5 (region "{text}"))')[0]
    return f"(location {first.branch} {first.pos!r})"
