"""The inferior-olive mechanisms: exact forward step, gradients vs FD, oscillations, I_CaH switch."""
from __future__ import annotations

import arbor
import numpy as np
from arbor import units as U
from conftest import ROOT

from gradgen.checks.fd import check_model
from gradgen.targets.arbor.decor import CellSpec, Decor
from gradgen.targets.arbor.morphology import cv_policy, load_swc

IO_FILES = ["io/io_soma.mod", "io/io_dend.mod", "io/io_axon.mod"]
CONDUCTANCES = ["io_soma.g_CaL", "io_soma.g_Na_s", "io_soma.g_Kdr_s", "io_soma.g_K_s",
                "io_soma.g_ls", "io_dend.g_CaH", "io_dend.g_K_Ca", "io_dend.g_h", "io_dend.g_ld",
                "io_axon.g_Na_a", "io_axon.g_K_a", "io_axon.g_la"]
REVERSALS = ["io_soma.V_K", "io_dend.V_K", "io_axon.V_K", "io_dend.V_h", "io_soma.V_Ca"]
SOMA = '(on-components 0.5 (region "soma"))'


def io_decor(dend_values: dict[str, float] | None = None) -> Decor:
    decor = Decor()
    decor.set_property(Vm=-60 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint('"soma"', arbor.density("io_soma"))
    decor.paint('"dend"', arbor.density("io_dend", dend_values or {}))
    decor.paint('"axon"', arbor.density("io_axon"))
    return decor


def three_region_cable() -> CellSpec:
    """Axon 10 µm | soma 40 µm | dendrite 100 µm on one r = 2 µm cable, 15 equal CVs."""
    tree = arbor.segment_tree()
    p = tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 2), arbor.mpoint(10, 0, 0, 2), tag=2)
    p = tree.append(p, arbor.mpoint(10, 0, 0, 2), arbor.mpoint(50, 0, 0, 2), tag=1)
    tree.append(p, arbor.mpoint(50, 0, 0, 2), arbor.mpoint(150, 0, 0, 2), tag=3)
    labels = arbor.label_dict({"soma": "(tag 1)", "axon": "(tag 2)", "dend": "(tag 3)"})
    return CellSpec(arbor.morphology(tree), io_decor(), labels, arbor.cv_policy_fixed_per_branch(15))


def bundled_cell(dend_values: dict[str, float] | None = None) -> CellSpec:
    cell = load_swc(ROOT / "morphologies" / "io_like.swc")
    return CellSpec(cell.morphology, io_decor(dend_values), cell.labels, cv_policy("branch:1"))


def test_io_gradients_match_finite_differences(make_model):
    """All 12 conductances and 5 reversal-potential copies against FD of the originals.

    Measured (200 ms, dt 0.025): forward |ΔV| 4e-11 mV; dV/dθ within 2.4e-4 of FD wherever
    the FD has converged (its two steps agree to < 1e-3); loss gradient 1.6e-6. The bounds
    leave room for other platforms' rounding, far below any real error (a missing term is
    percent-level).
    """
    model = make_model(IO_FILES, CONDUCTANCES + REVERSALS)
    report = check_model(model, three_region_cable(), ["(location 0 0.2)", "(location 0 0.9)"], 100.0, 0.025)
    assert report.forward_max_abs_diff_mV < 1e-9
    converged = [p for p in report.parameters if p["fd_convergence"] < 1e-3]
    assert len(converged) >= 15, [(p["name"], p["fd_convergence"]) for p in report.parameters]
    for p in converged:
        assert p["rel_error"] < 2e-3, p
    assert report.loss_gradient_rel_error < 1e-4


def _peaks(v: np.ndarray) -> int:
    """Local maxima at least 2 mV above both neighbouring minima."""
    count, low, rising, top = 0, v[0], False, v[0]
    for x in v[1:]:
        if x > top:
            top = x
        if rising and x < top - 2.0:
            count, rising, low = count + 1, False, x
        elif not rising and x > low + 2.0:
            rising, top = True, x
        low = min(low, x)
    return count


def test_bundled_cell_oscillates_below_threshold(make_model):
    """The defaults give the characteristic subthreshold oscillation (no spikes) that keeps going.

    Measured on io_like.swc, second 1–2 of 2000 ms: 6 cycles between −66 and −41 mV.
    """
    model = make_model(IO_FILES, ["io_soma.g_CaL"])
    v = model.simulate(bundled_cell(), [SOMA], 2000.0, 0.025, gradients=False, sample_dt=1.0).v[0]
    late = v[1000:]
    assert late.max() < -30.0  # subthreshold: no Na spike
    assert np.ptp(late) > 5.0  # still oscillating in the second second
    assert _peaks(late) >= 4


def test_cah_current_switch(make_model):
    """I_CaH in the membrane current (published model) latches the cell to a plateau; the
    default (study's code, Ca equation only) oscillates. Measured: plateau at +11.4 mV,
    mean −53 mV without."""
    model = make_model(IO_FILES, ["io_soma.g_CaL"])
    on = model.simulate(bundled_cell({"cah_current": 1.0}), [SOMA], 1000.0, 0.025,
                        gradients=False, sample_dt=1.0).v[0]
    off = model.simulate(bundled_cell(), [SOMA], 1000.0, 0.025, gradients=False, sample_dt=1.0).v[0]
    assert np.mean(on[500:]) > np.mean(off[500:]) + 20.0
