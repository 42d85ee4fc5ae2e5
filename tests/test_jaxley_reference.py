"""Jaxley reference: reverse-mode gradient vs central finite differences.

Skipped when jaxley is not installed (``pip install -e '.[bench]'``).

The check runs in a subprocess because importing benchmarks/jaxley_reference.py
switches JAX to float64 globally, which must not leak into the other tests of
this pytest process.

Compared quantity: the theta-scaled gradient ``theta_i * dL/dtheta_i`` at
1.1 x the true (gNa, gK, gLeak), 30 ms, against central differences of the same
Jaxley loss with relative step 1e-5. Measured relative error (2-norm, float64):
about 1.6e-8 (hh_axon, stimulus 5-25 ms) and 3e-9 (uniform_cable, 10-20 ms).
Threshold 1e-6: FD truncation and rounding at this step are ~1e-9..1e-8, so a
failure means the gradient is wrong, not FD noise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jaxley")

REPO = Path(__file__).resolve().parents[1]
REL_TOL = 1e-6

_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import jaxley_reference as jr
out = {}
for name, stim in [("hh_axon", {"t_on": 5.0, "t_off": 25.0}), ("uniform_cable", {})]:
    r = jr.fd_check(name, 30.0, **stim)
    v = r["v_target"]
    out[name] = {
        "rel_err": r["rel_err"],
        "ad": r["ad"].tolist(),
        "fd": r["fd"].tolist(),
        "loss": r["loss"],
        "shape": list(v.shape),
        "spikes": [jr.count_spikes(x) for x in v],
        "v0": v[:, 0].tolist(),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(REPO / "benchmarks")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("name", ["hh_axon", "uniform_cable"])
def test_reverse_grad_matches_finite_differences(results, name):
    r = results[name]
    assert r["loss"] > 0.0
    assert r["rel_err"] < REL_TOL, r


@pytest.mark.parametrize("name", ["hh_axon", "uniform_cable"])
def test_traces(results, name):
    r = results[name]
    assert r["shape"] == [2, 30.0 / 0.025 + 1]
    assert r["v0"] == [-65.0, -65.0]
    # The 20 ms / 10 ms steps make both cells fire; both sites see the same spikes.
    assert r["spikes"][0] >= 1
    assert r["spikes"][0] == r["spikes"][1]
