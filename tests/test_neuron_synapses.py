"""Point processes with NET_RECEIVE in the NEURON target: expsyn and exp2syn on the HH
cable, driven by two NetStim trains (``gradgen.targets.neuron.check.drive_synapses``),
against the originals compiled by nrnivmodl and central finite differences of them.

NEURON cannot unload a mechanism library, so every model runs in its own process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("neuron")

ROOT = Path(__file__).resolve().parent.parent
MECHANISMS = ROOT / "mechanisms"
#: the issue's bound on forward fidelity (measured: 1.6e-11 mV expsyn, 1.1e-11 mV exp2syn)
FORWARD_MV = 1e-9
#: the shadow carrier is the derivative of NEURON's step; the bound for the exact design
EXACT = 1e-5


def neuron_check(mods: list[str], params: str, dt: float, t_end: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "gradgen.cli", "check", *[str(MECHANISMS / m) for m in mods], "--params", params,
         "--target", "neuron", "--dt", str(dt), "--tfinal", str(t_end), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    print(proc.stdout.strip().splitlines()[-1])  # the measurement, for `pytest -s`
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("synapse, params", [
    ("expsyn.mod", "expsyn.tau,expsyn.e,expsyn.weight,hh.gnabar"),
    ("exp2syn.mod", "exp2syn.tau1,exp2syn.tau2,exp2syn.e,exp2syn.weight,hh.gkbar"),
])
def test_synapse_on_hh_cable(synapse, params):
    """dt 0.025, 50 ms, 13 events of 0.005 µS. Measured: V 1.6e-11 / 1.1e-11 mV from the
    originals; dV/dθ of tau, tau1, tau2, the weight and the channel's θ 2.3e-8 at worst (FD
    convergence ≤ 2.1e-6). The reversal e (default 0 mV, FD step 1e-7 mV) is at the FD's
    own resolution: 1.0e-4 / 6.7e-5 with FD convergence 7.5e-5 / 6.7e-5."""
    r = neuron_check(["hh.mod", synapse], params, 0.025, 50)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    for name, errors, convergence in zip(r["parameters"], r["dv_rel_error"], r["fd_convergence"]):
        assert convergence < 1e-3, name  # the two FD steps agree: the reference resolves dV/dθ
        # exact up to the FD's own error (2x: the error of the finer step is about the
        # difference of the two steps)
        assert max(errors) <= max(EXACT, 2 * convergence), name
    assert r["loss_gradient_rel_error"] <= EXACT
    # the synapse moves V: its parameters' dV/dθ are not zero
    assert all(abs(g) > 0 for g in r["loss_gradient_fd"])
