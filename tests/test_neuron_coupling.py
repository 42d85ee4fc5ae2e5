"""Ion coupling in the NEURON target: a Ca current (cahva, calva) fills a Ca pool (cad), and a
Ca-activated K current reads the pool's cai, against the originals compiled by nrnivmodl
and central finite differences of them.

NEURON runs a mechanism that writes a concentration before the others, so the derived
system hands sensitivities over in that order (``derive_contributor``'s ``pool_first``).
The coupled ion's reversal potential is held fixed in the check (NEURON's default would
recompute it by Nernst from cai, a path gradgen does not carry; Arbor's coupling has the
same limit). NEURON cannot unload a mechanism library: every model runs in its own process.
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
#: the issue's bound on forward fidelity (measured ≤ 1.1e-11 mV)
FORWARD_MV = 1e-9
#: the shadow carrier is the derivative of NEURON's step; the bound for the exact design
EXACT = 1e-5
#: cad.taur moves V at the near site by little (|dV/dθ| 1.6e-3 mV/ms): the FD's smaller step
#: (80e-5 ms) is rounding-limited there, 1.1e-5 from the FD with step 80e-3 ms, while the
#: gradient is within 7.9e-7 of the FD with step 80e-4 ms (measured at dt 0.025; the
#: report's FD convergence is over both sites, so it does not show this)
FD_LIMITED = {"cad.taur": 3e-5}

#: a Ca-activated K current reading cai, Hill coefficient 2 (mechanisms/sk.mod has 4; see
#: test_sk_in_a_ca_chain); ASCII only, as nrnivmodl wants
KCA = """
NEURON {
    SUFFIX kca
    USEION ca READ cai
    USEION k READ ek WRITE ik
    RANGE gbar, kd
}
PARAMETER {
    gbar = 0.01 (S/cm2)
    kd = 0.0005 (mM)
    tau = 5 (ms)
}
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) cai (mM) }
STATE { z }
INITIAL { z = cai*cai/(cai*cai + kd*kd) }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*z*(v - ek)
}
DERIVATIVE states { z' = (cai*cai/(cai*cai + kd*kd) - z)/tau }
"""


def neuron_check(files: list[str], params: str, dt: float, t_end: float, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradgen.cli", "check", *files, "--params", params, "--target", "neuron",
         "--dt", str(dt), "--tfinal", str(t_end), "--stimulus", "0.3", "--json", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)


def assert_exact_up_to_the_fd(proc: subprocess.CompletedProcess, fd_limited: dict[str, float]) -> None:
    """The check's report: V as the originals, every dV/dθ exact up to the FD's own error (or
    the FD-limited bound of its θ), the loss gradient exact, and every θ moving V (so the
    coupling is exercised)."""
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    print(proc.stdout.strip().splitlines()[-1])  # the measurement, for `pytest -s`
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    for name, errors, convergence in zip(r["parameters"], r["dv_rel_error"], r["fd_convergence"]):
        assert convergence < 1e-3, name  # the two FD steps agree: the reference resolves dV/dθ
        assert max(errors) <= max(EXACT, 3 * convergence, fd_limited.get(name, 0.0)), name
    assert r["loss_gradient_rel_error"] <= EXACT
    assert all(abs(g) > 0 for g in r["loss_gradient_fd"])


@pytest.fixture
def kca(tmp_path) -> str:
    path = tmp_path / "kca.mod"
    path.write_text(KCA)
    return str(path)


@pytest.mark.parametrize("dt", [0.025, 0.0025])
def test_ca_current_pool_and_ca_activated_k(kca, dt):
    """HH cable (500 µm, 51 segments, 0.3 nA) with cahva + calva + cad + kca, 50 ms.
    Measured at dt 0.025 / 0.0025: V 1.2e-11 / 4.5e-12 mV from the originals; dV/dθ of
    cahva.gbar, calva.gbar, cad.depth, kca.gbar, kca.kd, hh.gnabar ≤ 5.9e-8 / 4.2e-9; cad.taur
    1.2e-5 at both (:data:`FD_LIMITED`); loss gradient 1.2e-9 / 1.2e-8."""
    files = [str(MECHANISMS / m) for m in ("hh.mod", "cahva.mod", "calva.mod", "cad.mod")] + [kca]
    proc = neuron_check(files, "cahva.gbar,calva.gbar,cad.taur,cad.depth,kca.gbar,kca.kd,hh.gnabar", dt, 50)
    assert_exact_up_to_the_fd(proc, FD_LIMITED)


def test_sk_in_a_ca_chain():
    """mechanisms/sk.mod (its Hill factor written as products: nocmodl's cnexp aborts on ^)
    with cahva + cad on the HH cable, 0.3 nA, dt 0.025, 50 ms. Measured: V 8.5e-12 mV from
    the originals; dV/dθ of cahva.gbar, sk.gbar, sk.kd, sk.tau ≤ 3.4e-8; cad.taur 3.7e-4
    where its two FD steps differ by 3.1e-4 (it barely moves V here: loss gradient −1.3e-8);
    loss gradient 3.9e-10."""
    files = [str(MECHANISMS / m) for m in ("hh.mod", "cahva.mod", "cad.mod", "sk.mod")]
    proc = neuron_check(files, "cahva.gbar,cad.taur,sk.gbar,sk.kd,sk.tau", 0.025, 50)
    assert_exact_up_to_the_fd(proc, {})


def test_coupling_needs_the_shadow_carrier(kca, tmp_path):
    files = [str(MECHANISMS / m) for m in ("cahva.mod", "cad.mod")] + [kca]
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "convert", *files, "-o", str(tmp_path / "out"),
                           "--params", "cad.taur", "--target", "neuron", "--scheme", "corrected"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "shadow carrier" in proc.stderr and "Traceback" not in proc.stderr


NERNST_SCRIPT = r"""
import sys
from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.params import parse_param_list
from gradgen.targets.neuron.check import cable
from gradgen.targets.neuron.model import NeuronModel

convert(sys.argv[3:], sys.argv[2], parse_param_list(sys.argv[1].split(",")), target="neuron")
model = NeuronModel.load(sys.argv[2])
cell = cable(model.h, ["hh", "cahva", "calva", "cad", "kca"], stimulus_nA=0.3)  # NEURON's default ion style
model.swap(cell.sections)
try:
    model.run(cell.sites, 5.0, 0.025)
except GradgenError as e:
    print(e)
"""


def test_a_nernst_reversal_is_refused(kca, tmp_path):
    """NEURON's default for an ion whose cai a mechanism writes is eca by Nernst, each step:
    the gradients would silently miss dV/dθ through eca (cahva.gbar: 11 % on the check's
    cable), so run() refuses it and names the ion_style that holds it."""
    files = [str(MECHANISMS / m) for m in ("hh.mod", "cahva.mod", "calva.mod", "cad.mod")] + [kca]
    proc = subprocess.run([sys.executable, "-c", NERNST_SCRIPT,
                           "cahva.gbar,calva.gbar,cad.taur,cad.depth,kca.gbar,kca.kd,hh.gnabar",
                           str(tmp_path / "out"), *files], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "computes eca from cai (Nernst)" in proc.stdout and 'ion_style("ca_ion", 3, 2, 0, 0, 1' in proc.stdout
