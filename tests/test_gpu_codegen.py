"""Every kind of mechanism gradgen generates is accepted by ``modcc -t gpu``.

GPU builds of Arbor compile catalogues with modcc's GPU printer; this checks code generation
only (no CUDA compiler here): contributors of channels, ion-coupled mechanisms and synapses,
the hub, the fused mechanisms, the homeostatic hub and its noise input.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import MECHANISMS

from gradgen.convert import convert
from gradgen.homeostasis.convert import (
    HomeostaticConfig,
    RateTarget,
    convert_homeostatic,
)
from gradgen.nmodl.lower import lower_file
from gradgen.params import ParamRef
from gradgen.sensitivity.coupling import Coupling
from gradgen.sensitivity.derive import derive_contributor
from gradgen.targets.arbor.build import tool
from gradgen.targets.arbor.emit_fused import emit_fused

CHANNELS = ["hh.mod", "pas.mod", "nat.mod", "kdr.mod", "ka.mod", "km.mod", "ih.mod", "kmarkov.mod",
            "calva.mod", "io/io_soma.mod", "io/io_dend.mod", "io/io_axon.mod"]
COUPLED = ["cad.mod", "cahva.mod", "sk.mod", "hh.mod"]
SYNAPSES = ["expsyn.mod", "exp2syn.mod", "hh.mod"]


def _gpu_codegen(mod_files: list[Path], out: Path) -> list[str]:
    """Run modcc's GPU printer on each file; returns the names whose GPU sources appeared."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([tool("modcc"), "-t", "gpu", "-N", "arb", "-c", "gpucheck", "-o", str(out),
                           *map(str, mod_files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return sorted(p.name[: -len("_gpu.cu")] for p in out.glob("*_gpu.cu"))


def _generated(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.mod"))  # the originals under original/ are not generated


@pytest.mark.parametrize("files", [CHANNELS, COUPLED, SYNAPSES], ids=["channels", "coupled", "synapses"])
def test_converted_mechanisms_pass_modcc_gpu(tmp_path, files):
    out = tmp_path / "conv"
    convert([MECHANISMS / f for f in files], out, None)  # every parameter of every mechanism
    mods = _generated(out)
    assert len(mods) == len(files) + 1  # one contributor per file and the hub
    assert _gpu_codegen(mods, tmp_path / "gpu") == sorted(p.stem for p in mods)


def test_fused_mechanisms_pass_modcc_gpu(tmp_path):
    params = [ParamRef.parse(p) for p in ("hh.gnabar", "pas.g", "io_dend.g_CaH", "io_soma.g_CaL")]
    systems = {m: derive_contributor(lower_file(MECHANISMS / f), params, Coupling())
               for m, f in (("hh", "hh.mod"), ("pas", "pas.mod"), ("io_dend", "io/io_dend.mod"),
                            ("io_soma", "io/io_soma.mod"))}
    sets = [["hh"], ["hh", "pas"], ["io_dend"], ["io_soma", "pas"]]
    mods = []
    for members in sets:
        path = tmp_path / ("gradf_" + "_".join(members) + ".mod")
        path.write_text(emit_fused([systems[m] for m in members], params))
        mods.append(path)
    assert _gpu_codegen(mods, tmp_path / "gpu") == sorted(p.stem for p in mods)


def test_homeostatic_mechanisms_pass_modcc_gpu(tmp_path):
    config = HomeostaticConfig(1.0, 1e-3, RateTarget(5.0), noise={"sigma": 0.1})
    out = tmp_path / "homeo"
    convert_homeostatic([MECHANISMS / "hh.mod"], out, [ParamRef.parse("hh.gkbar"), ParamRef.parse("hh.gl")],
                        config)
    mods = _generated(out)
    assert len(mods) == 3  # the contributor, the homeostatic hub, the noise input
    assert _gpu_codegen(mods, tmp_path / "gpu") == sorted(p.stem for p in mods)
