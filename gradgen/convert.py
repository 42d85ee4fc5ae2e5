"""`gradgen convert`: `.mod` files and a parameter set to a directory of gradient mechanisms.

The output directory holds one gradient mechanism per input, the hub, a copy of each
original file (under ``original/``, the reference for finite-difference checks) and
``gradients.json``. It is written through :mod:`gradgen.outputs`: only into a new directory
or an earlier output, all files or none, the user's extra files left alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gradgen.errors import GradgenError
from gradgen.manifest import (
    CouplingEntry,
    Manifest,
    bystander_entry,
    mechanism_entry,
    parameter_entries,
)
from gradgen.nmodl.ir import Mechanism
from gradgen.nmodl.lower import lower_file
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.nmodl.parser import parse_file
from gradgen.outputs import write_outputs
from gradgen.params import ParamRef
from gradgen.protocol import HUB_NAME, MANIFEST, gradient_name
from gradgen.sensitivity.bystanders import bystanders
from gradgen.sensitivity.coupling import Coupling, check_single_readers, find_coupling
from gradgen.sensitivity.derive import derive_contributor
from gradgen.targets import get_target


def all_parameters(mechanisms: Sequence[LoweredMechanism]) -> list[ParamRef]:
    """Every PARAMETER of every mechanism, each as one θ over the whole cell (a GLOBAL one
    too: one value for the mechanism, its gradient summed over every CV)."""
    return [ParamRef(m.name, p) for m in mechanisms for p in m.parameter_names()]


def check_parameters(params: Sequence[ParamRef], mechanisms: Sequence[LoweredMechanism],
                     passive: Sequence[Mechanism] = ()) -> None:
    by_name = {m.name: m for m in mechanisms}
    for ref in params:
        mech = by_name.get(ref.mechanism)
        bystander = next((b for b in passive if b.name == ref.mechanism), None)
        if bystander is not None:
            raise GradgenError(
                f"parameter '{ref.name}': '{ref.mechanism}' cannot move V (it has no current and "
                "no other input reads what it writes), so dV/dθ is 0", bystander.pos,
                hint="differentiate the mechanisms it runs beside, or add the mechanism that reads its ion")
        if mech is None:
            raise GradgenError(f"parameter '{ref.name}': no mechanism '{ref.mechanism}' among the inputs",
                               hint="mechanisms: " + ", ".join(by_name))
        names = mech.parameter_names() + mech.event_args
        if ref.parameter not in names:
            raise GradgenError(
                f"parameter '{ref.name}': '{ref.mechanism}' has no parameter '{ref.parameter}'",
                mech.mechanism.pos, hint="its parameters: " + ", ".join(names))
        if ref.parameter in mech.event_args and ref.region:
            raise GradgenError(f"parameter '{ref.name}': an event weight cannot be bound to a region",
                               hint=f"use {ref.mechanism}.{ref.parameter}")


def convert(mod_files: Sequence[Path | str], out_dir: Path | str,
            params: Sequence[ParamRef] | None = None, scheme: str | None = None,
            couple_ions: bool = True, target: str = "arbor") -> Manifest:
    """Convert; ``params=None`` means all parameters. Returns the manifest.

    ``target`` names the simulator (:mod:`gradgen.targets`); ``scheme`` selects the hub's
    update among the target's schemes (default: its first; see
    :func:`gradgen.targets.arbor.emit.emit_hub`);
    ``couple_ions=False`` drops the sensitivities that pass between mechanisms through ions
    (see :mod:`gradgen.sensitivity.coupling`) — wrong gradients, kept only to show what coupling buys.
    """
    parsed = [parse_file(f) for f in mod_files]
    seen: dict[str, Path] = {}
    for m in parsed:
        if m.name in seen:
            raise GradgenError(f"two inputs define mechanism '{m.name}'", m.pos,
                               hint=f"also in {seen[m.name]}")
        seen[m.name] = m.source
    passive = [m for m in parsed if m.name in bystanders(parsed)]
    mechanisms = [lower_file(m.source) for m in parsed if m not in passive]
    params = list(params) if params is not None else all_parameters(mechanisms)
    check_parameters(params, mechanisms, passive)

    backend = get_target(target)
    scheme = scheme or backend.schemes[0]
    if scheme not in backend.schemes:
        raise GradgenError(f"unknown scheme '{scheme}'", hint="schemes: " + ", ".join(backend.schemes))
    coupling = find_coupling(mechanisms, backend.follows_nernst) if couple_ions else Coupling()
    if backend.pool_first:
        check_single_readers(mechanisms, coupling)
    files: dict[str, str] = {f"{HUB_NAME}.mod": backend.emit_hub(params, scheme, coupling)}
    for m in mechanisms:
        system = derive_contributor(m, params, coupling, backend.state_updates, backend.slope_step,
                                    pool_first=backend.pool_first,
                                    simulator_solves_initial=backend.simulator_solves_initial)
        files[f"{gradient_name(m.name)}.mod"] = backend.emit_contributor(system)
        files[f"original/{m.name}.mod"] = m.mechanism.text
    for b in passive:
        files[f"original/{b.name}.mod"] = b.text
    manifest = Manifest(
        hub=HUB_NAME, scheme=scheme,
        parameters=parameter_entries(params, [_default(p, mechanisms) for p in params]),
        mechanisms=[mechanism_entry(m, len(params), [m.ion_reads[e] for e in coupling.followed(m)])
                    for m in mechanisms]
        + [bystander_entry(b) for b in passive],
        coupling=CouplingEntry(list(coupling.currents), list(coupling.concentrations),
                               coupling.store_ions(len(params))))
    files[MANIFEST] = manifest.to_json()
    write_outputs(out_dir, files, inputs=[m.source for m in parsed])
    return manifest


def _default(ref: ParamRef, mechanisms: Sequence[LoweredMechanism]) -> float | None:
    """The value in the .mod file; None for an event weight, which the cell's inputs carry."""
    mech = next(m for m in mechanisms if m.name == ref.mechanism)
    if ref.parameter in mech.event_args:
        return None
    return float(mech.mechanism.parameter(ref.parameter).value or 0.0)
