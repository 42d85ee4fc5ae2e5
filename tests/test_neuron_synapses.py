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


SCRIPT = r"""
import json, sys
import numpy as np
from gradgen.targets.neuron.check import relative_error
from gradgen.targets.neuron.model import neuron_h, simulate
from gradgen.protocol import original_name

h = neuron_h()
from gradgen.convert import convert
from gradgen.params import parse_param_list
from gradgen.targets.neuron.model import NeuronModel
mods = [sys.argv[1] + "/hh.mod", sys.argv[1] + "/expsyn.mod"]
convert(mods, sys.argv[2], parse_param_list(["expsyn.tau", "hh.gkbar"]), target="neuron")
model = NeuronModel.load(sys.argv[2])
cells = []
for name in ("pre", "post"):
    soma = h.Section(name=name)
    soma.L = soma.diam = 20
    soma.insert(original_name("hh"))
    cells.append(soma)
pre, post = cells
stim = h.IClamp(pre(0.5)); stim.delay, stim.dur, stim.amp = 1, 1e9, 0.2
syn = getattr(h, original_name("expsyn"))(post(0.5))
nc = h.NetCon(pre(0.5)._ref_v, syn, sec=pre)  # from a section's voltage, as models connect cells
nc.threshold, nc.delay, nc.weight[0] = 0, 2.0, 0.01
sites, dt, t_end = [post(0.5)], 0.025, 40.0

def run(tau, gk):
    syn.tau = tau
    for sec in cells:
        getattr(sec(0.5), original_name("hh")).gkbar = gk
    return simulate(h, sites, t_end, dt).v[0]

plain = run(2.0, 0.036)
fd = [(run(2.0 + 2e-4, 0.036) - run(2.0 - 2e-4, 0.036)) / 4e-4,
      (run(2.0, 0.036 + 3.6e-6) - run(2.0, 0.036 - 3.6e-6)) / 7.2e-6]
run(2.0, 0.036)
model.swap(cells)
traces = model.run(sites, t_end, dt)
print(json.dumps({"forward": float(np.max(np.abs(traces.v[0] - plain))), "spikes": int(np.sum(np.diff(
    (plain > 0).astype(int)) == 1)), "nc_active": int(nc.active()),
    "errors": [relative_error(traces.u[0, k], fd[k]) for k in range(2)]}))
"""


def test_synapse_from_a_cells_voltage_is_swapped_with_its_netcon(tmp_path):
    """Two cells, a NetCon from the first's voltage into the second's expsyn (the usual
    wiring of a NEURON network): the swap re-makes the NetCon into the gradient synapse and
    deactivates the old one. Measured at dt 0.025 (3 postsynaptic spikes): V 3.4e-11 mV from
    the original; dV/dθ of expsyn.tau and hh.gkbar (both cells) at the postsynaptic soma
    1.4e-8 / 1.6e-8 from central FD. gkbar moves the presynaptic spike too, but NEURON's
    fixed step delivers an event at a step boundary: the FD's small steps do not move it,
    and the gradient does not carry event timing either."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(MECHANISMS), str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(r)
    assert r["spikes"] >= 1 and r["nc_active"] == 0
    assert r["forward"] <= FORWARD_MV
    assert max(r["errors"]) <= EXACT
