"""SIMD builds of gradient mechanisms: the repair of modcc's diffusive-concentration write.

modcc 0.12.2's SIMD printer assigns w·x to a diffusive concentration in its contiguous-chunk
branch instead of adding w·(x − old) (see gradgen.simd_patch). These tests pin the emitted
construct (so a changed modcc fails here rather than giving silently wrong gradients) and
check that the repaired SIMD build agrees with the scalar one where the bug would show: a
density mechanism covering part of a CV, and point processes (built scalar).
"""
from __future__ import annotations

import subprocess

import arbor
import numpy as np
import pytest
from arbor import units as U
from conftest import MECHANISMS

from gradgen.checks.cells import cable_cell_spec
from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.params import ParamRef
from gradgen.targets.arbor.build import tool
from gradgen.targets.arbor.decor import CellSpec, Decor
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.simd_patch import (
    CONTIGUOUS_ASSIGNMENT,
    check_simd_writes,
    patch_simd_source,
)

#: SIMD and scalar builds differ only by the rounding of vectorised exp and of operation order;
#: measured ≤ 3e-13 relative on these cells. An unrepaired SIMD build is off by 1e-2 and more.
AGREEMENT = 1e-10


def _simd_source(out, mechanism: str, tmp_path) -> str:
    gen = tmp_path / "simd"
    gen.mkdir()
    subprocess.run([tool("modcc"), "-t", "cpu", "--simd", "-N", "arb", "-c", "t", "-o", str(gen),
                    str(out / f"{mechanism}.mod")], check=True, capture_output=True)
    return (gen / f"{mechanism}_cpu.cpp").read_text()


def test_modcc_emits_the_repaired_construct(tmp_path):
    """Fails if a future modcc no longer emits the assignment the repair rewrites.

    grad_hh with K parameters writes gsg and gs0..gs(K-1) in BREAKPOINT and gs0..gs(K-1) in
    its state update: 2K + 1 contiguous-chunk writes, each of them the buggy assignment.
    """
    K = 3
    out = tmp_path / "conv"
    convert([MECHANISMS / "hh.mod"], out, [ParamRef.parse(p) for p in ("hh.gnabar", "hh.gkbar", "hh.gl")])
    text = _simd_source(out, "grad_hh", tmp_path)
    assert len(CONTIGUOUS_ASSIGNMENT.findall(text)) == 2 * K + 1
    with pytest.raises(GradgenError, match="does not know"):
        check_simd_writes(text, "grad_hh_cpu.cpp")  # the unrepaired code is refused
    patched, count = patch_simd_source(text)
    assert count == 2 * K + 1
    assert not CONTIGUOUS_ASSIGNMENT.search(patched)
    check_simd_writes(patched, "grad_hh_cpu.cpp")


def test_unknown_write_form_is_refused():
    text = ("static void advance_state(arb_mechanism_ppack* pp) {\n"
            "    indirect(_pp_var_ion_gg0.diffusive_concentration + ion_gg0_indexi_, simd_width_) = gg0d;\n}\n")
    with pytest.raises(GradgenError, match="x.cpp:2"):
        check_simd_writes(text, "x.cpp")


def _both_builds(tmp_path, files: list, params: list[str]) -> tuple[GradientModel, GradientModel]:
    out = tmp_path / "conv"
    convert(files, out, [ParamRef.parse(p) for p in params])
    simd = GradientModel.load(out)
    scalar = GradientModel.load(out)
    scalar.vectorize = False
    return simd, scalar


def _assert_agree(simd, scalar) -> None:
    assert np.max(np.abs(simd.v - scalar.v)) <= AGREEMENT * np.max(np.abs(scalar.v))
    for k in range(scalar.dv.shape[1]):
        scale = np.max(np.abs(scalar.dv[:, k]))
        assert scale > 0
        assert np.max(np.abs(simd.dv[:, k] - scalar.dv[:, k])) <= AGREEMENT * scale


def test_partial_cv_paint_simd_matches_scalar(tmp_path):
    """Region borders inside CVs (w < 1 there): 10 CVs on 500 µm, borders at 0.33 and 0.61."""
    labels = {"prox": "(cable 0 0 0.33)", "mid": "(cable 0 0.33 0.61)"}
    spec = cable_cell_spec(["hh"], n_cv=10, stimulus_nA=0.1, t_off=90, labels=labels)
    spec.decor.paint('(region "mid")', arbor.density("pas", {"g": 2e-4}))
    simd, scalar = _both_builds(tmp_path, [MECHANISMS / "hh.mod", MECHANISMS / "pas.mod"],
                                ["hh.gnabar@prox", "hh.gkbar", "pas.g", "pas.e"])
    sites = ["(location 0 0.05)", "(location 0 0.35)", "(location 0 0.95)"]
    a = simd.simulate(spec, sites, 100, 0.025)
    b = scalar.simulate(spec, sites, 100, 0.025)
    assert np.sum(np.diff((b.v[0] > 0).astype(int)) == 1) >= 3  # it spikes: measured 5
    _assert_agree(a, b)


POINT_LEAK = """NEURON {
    POINT_PROCESS ptleak
    NONSPECIFIC_CURRENT i
    RANGE g, e
}
PARAMETER {
    g = 0.001 (uS)
    e = -70 (mV)
}
BREAKPOINT {
    i = g*(v - e)
}
"""


def test_point_processes_simd_build_matches_scalar(tmp_path):
    """A point process with a constant conductance, alone on one CV and two sharing another.

    Built SIMD, modcc writes its diffusive concentrations with weight 1, so the padded lanes
    of a chunk add the increment again: measured 42–54 % error in dV/dθ here (synapses, whose
    padded lanes hold zero conductance, happen to agree). gradgen builds them scalar.
    """
    (tmp_path / "ptleak.mod").write_text(POINT_LEAK)
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(200, 0, 0, 0.5), tag=1)
    decor = Decor().set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    decor.place("(location 0 0)", arbor.i_clamp(5 * U.ms, 40 * U.ms, 0.05 * U.nA))
    for i, pos in enumerate((0.55, 0.21, 0.22)):
        decor.place(f"(location 0 {pos})", arbor.synapse("ptleak", {"e": -70.0 + i}), f"s{i}")
    spec = CellSpec(arbor.morphology(tree), decor, arbor.label_dict(), arbor.cv_policy_fixed_per_branch(10))
    simd, scalar = _both_builds(tmp_path, [tmp_path / "ptleak.mod", MECHANISMS / "hh.mod"],
                                ["ptleak.g", "ptleak.e", "hh.gkbar"])
    sites = ["(location 0 0.05)", "(location 0 0.55)"]
    _assert_agree(simd.simulate(spec, sites, 50, 0.025), scalar.simulate(spec, sites, 50, 0.025))
