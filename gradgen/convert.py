"""`gradgen convert`: `.mod` files and a parameter set to a directory of gradient mechanisms.

The output directory holds one gradient mechanism per input, the hub, a copy of each
original file (under ``original/``, the reference for finite-difference checks) and
``gradients.json``. It is written through :mod:`gradgen.outputs`: only into a new directory
or an earlier output, all files or none, the user's extra files left alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from gradgen import __version__
from gradgen.coupling import Coupling, find_coupling
from gradgen.derive import derive_contributor, sens
from gradgen.emit import HUB_NAME, emit_contributor, emit_hub, gradient_name
from gradgen.errors import GradgenError
from gradgen.lower import LoweredMechanism, lower_file
from gradgen.outputs import write_outputs
from gradgen.params import ParamRef, carrier_ion
from gradgen.runtime import MANIFEST


def all_parameters(mechanisms: Sequence[LoweredMechanism]) -> list[ParamRef]:
    """Every PARAMETER of every mechanism, each as one θ over the whole cell."""
    return [ParamRef(m.name, p) for m in mechanisms for p in m.parameter_names()]


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
    write_outputs(out_dir, files, inputs=[m.mechanism.source for m in mechanisms])
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
