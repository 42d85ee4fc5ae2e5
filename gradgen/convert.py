"""`gradgen convert`: `.mod` files and a parameter set to a directory of gradient mechanisms.

The output directory holds one gradient mechanism per input, the hub, a copy of each
original file (under ``original/``, the reference for finite-difference checks) and
``gradients.json``. It is written next to its destination and moved into place only when
complete, so a failed conversion never leaves half-written output behind.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from gradgen import __version__
from gradgen.coupling import Coupling, find_coupling
from gradgen.derive import derive_contributor, sens
from gradgen.emit import HUB_NAME, emit_contributor, emit_hub, gradient_name
from gradgen.convertible import global_pos
from gradgen.errors import GradgenError, GradgenWarning
from gradgen.lower import LoweredMechanism, lower_file
from gradgen.params import ParamRef, carrier_ion
from gradgen.runtime import MANIFEST


def all_parameters(mechanisms: Sequence[LoweredMechanism]) -> list[ParamRef]:
    """Every PARAMETER of every mechanism, each as one θ over the whole cell; GLOBALs are
    skipped with a warning (they cannot be θ yet, and a user asking for all wants the rest)."""
    globals_ = [f"{m.name}.{p}" for m in mechanisms for p in m.parameter_names()
                if p in m.mechanism.global_names]
    if globals_:
        warnings.warn(f"GLOBAL parameter(s) {', '.join(globals_)} are not differentiated "
                      "(GLOBALs cannot be θ yet)", GradgenWarning, stacklevel=2)
    return [ParamRef(m.name, p) for m in mechanisms for p in m.parameter_names()
            if p not in m.mechanism.global_names]


def check_parameters(params: Sequence[ParamRef], mechanisms: Sequence[LoweredMechanism]) -> None:
    by_name = {m.name: m for m in mechanisms}
    for ref in params:
        mech = by_name.get(ref.mechanism)
        if mech is None:
            raise GradgenError(f"parameter '{ref.name}': no mechanism '{ref.mechanism}' among the inputs",
                               hint="mechanisms: " + ", ".join(by_name))
        names = mech.parameter_names() + mech.event_args
        if ref.parameter not in names:
            raise GradgenError(
                f"parameter '{ref.name}': '{ref.mechanism}' has no parameter '{ref.parameter}'",
                mech.mechanism.pos, hint="its parameters: " + ", ".join(names))
        if ref.parameter in mech.mechanism.global_names:
            raise GradgenError(f"parameter '{ref.name}' is GLOBAL: GLOBAL parameters cannot be θ yet",
                               global_pos(mech.mechanism, ref.parameter),
                               hint="make it RANGE in a copy of the file, or leave it out")
        if ref.parameter in mech.event_args and ref.region:
            raise GradgenError(f"parameter '{ref.name}': an event weight cannot be bound to a region",
                               hint=f"use {ref.mechanism}.{ref.parameter}")


def convert(mod_files: Sequence[Path | str], out_dir: Path | str,
            params: Sequence[ParamRef] | None = None, scheme: str = "corrected",
            couple_ions: bool = True) -> dict:
    """Convert; ``params=None`` means all parameters. Returns the manifest.

    ``scheme`` selects the hub's update (see :func:`gradgen.emit.emit_hub`);
    ``couple_ions=False`` drops the sensitivities that pass between mechanisms through ions
    (see :mod:`gradgen.coupling`) — wrong gradients, kept only to show what coupling buys.
    """
    mechanisms = [lower_file(f) for f in mod_files]
    seen: dict[str, Path] = {}
    for m in mechanisms:
        if m.name in seen:
            raise GradgenError(f"two inputs define mechanism '{m.name}'", m.mechanism.pos,
                               hint=f"also in {seen[m.name]}")
        seen[m.name] = m.mechanism.source
    params = list(params) if params is not None else all_parameters(mechanisms)
    check_parameters(params, mechanisms)

    coupling = find_coupling(mechanisms) if couple_ions else Coupling()
    files: dict[str, str] = {f"{HUB_NAME}.mod": emit_hub(params, scheme, coupling)}
    entries = []
    for m in mechanisms:
        system = derive_contributor(m, params, coupling)
        files[f"{gradient_name(m.name)}.mod"] = emit_contributor(system)
        files[f"original/{m.name}.mod"] = m.mechanism.text
        entries.append({
            "original": m.name,
            "gradient": gradient_name(m.name),
            "kind": m.mechanism.kind,
            "source": str(m.mechanism.source),
            "source_copy": f"original/{m.name}.mod",
            "states": m.states,
            "reads_diam": _reads_diam(m),
            "parameters": m.parameter_names(),
            "sensitivities": {s: [sens(s, k) for k in range(len(params))] for s in m.states},
        })
    manifest = {
        "gradgen_version": __version__,
        "hub": HUB_NAME,
        "scheme": scheme,
        "parameters": [{"name": p.name, "mechanism": p.mechanism, "parameter": p.parameter,
                        "region": p.region, "default": _default(p, mechanisms),
                        "ion": carrier_ion(k), "hub_state": f"u{k}"}
                       for k, p in enumerate(params)],
        "mechanisms": entries,
        "coupling": {"currents": list(coupling.currents), "concentrations": list(coupling.concentrations),
                     "store_ions": coupling.store_ions(len(params))},
    }
    files[MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    _write_atomically(Path(out_dir), files)
    return manifest


def _reads_diam(low: LoweredMechanism) -> bool:
    """Whether any expression reads the CV diameter (which the geometry transform changes)."""
    exprs = [c.expr for c in low.currents] + list(low.derivatives.values())
    exprs += list(low.initial.values()) + list(low.equations) + list(low.events.values())
    return any(s.name == "diam" for e in exprs for s in e.free_symbols)


def _default(ref: ParamRef, mechanisms: Sequence[LoweredMechanism]) -> float | None:
    """The value in the .mod file; None for an event weight, which the cell's inputs carry."""
    mech = next(m for m in mechanisms if m.name == ref.mechanism)
    if ref.parameter in mech.event_args:
        return None
    return float(mech.mechanism.parameter(ref.parameter).value or 0.0)


def _write_atomically(out_dir: Path, files: dict[str, str]) -> None:
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, text in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "dir")
            os.replace(staging, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
