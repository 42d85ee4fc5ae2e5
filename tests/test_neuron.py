"""The NEURON target against NEURON itself: forward fidelity to the original mechanisms
compiled by nrnivmodl, dV/dθ and loss gradients against central finite differences of the
original NEURON model, and the same gradients in Arbor and NEURON.

NEURON cannot unload a mechanism library, so every model runs in its own process (the
command line, or a short script).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("neuron")

ROOT = Path(__file__).resolve().parent.parent
MECHANISMS = ROOT / "mechanisms"
C4A = ROOT.parent / "shared" / "data" / "C4A.swc"
#: the issue's bound on forward fidelity (measured: ≤ 2e-11 mV over 50 ms of HH spiking at dt
#: 0.025, 2e-10 mV at dt 0.1)
FORWARD_MV = 1e-9


#: the shadow carrier is the derivative of NEURON's own step: what is left is the central
#: FD's error (its two steps differ by up to 2.6e-4 on spiking C4A, 5e-5 on the HH cable;
#: measured errors ≤ 2.9e-6); the issue's bound for it
EXACT = 1e-5


def neuron_check(mods: list[str], params: str, dt: float, t_end: float, *extra: str) -> dict:
    """`gradgen check --target neuron --json` in its own process."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradgen.cli", "check", *[str(MECHANISMS / m) for m in mods], "--params", params,
         "--target", "neuron", "--dt", str(dt), "--tfinal", str(t_end), "--json", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    print(proc.stdout.strip().splitlines()[-1])  # the measurement, for `pytest -s`
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_script(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


HH = "hh.gnabar,hh.gkbar,hh.gl"


@pytest.mark.slow
@pytest.mark.parametrize("dt", [0.1, 0.025, 0.0025])
def test_hh_cable_is_exact_at_every_dt(dt):
    """Uniform HH cable (500 µm, diam 1 µm, Ra 100, 51 segments, 0.1 nA), 50 ms, shadow
    carrier. Measured at dt 0.025: V 1.3e-11 mV from the original; dV/dθ 1.3e-7 near /
    5.6e-7 far; loss 7.5e-8 (0.0025: 6.9e-7, 7.9e-8)."""
    r = neuron_check(["hh.mod"], HH, dt, 50)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(c for c in r["fd_convergence"]) < 1e-3  # the FD steps agree: it measures something
    assert max(max(e) for e in r["dv_rel_error"]) <= EXACT
    assert r["loss_gradient_rel_error"] <= EXACT


@pytest.mark.slow
@pytest.mark.parametrize("dt, bound", [(0.025, 0.01), (0.0025, 0.001)])
def test_hh_cable_ion_carrier(dt, bound):
    """The ion carrier (``--scheme corrected``) on the same cable, to the issue's bounds for a
    first-order carrier. Measured: dt 0.025: dV/dθ 0.092 % / 0.20 %, loss 0.055 % (without
    the split compensation, ``naive``: 17 % / 20 %, 14 %); dt 0.0025: 1.3e-7 / 8.6e-7."""
    r = neuron_check(["hh.mod"], HH, dt, 50, "--scheme", "corrected")
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= bound
    assert r["loss_gradient_rel_error"] <= bound


@pytest.mark.parametrize("scheme, bound", [("shadow", 1e-8), ("corrected", 1e-5)])
def test_passive_cable(scheme, bound):
    """pas alone, dt 0.025, 10 ms: dV/de is exact with both carriers (e is uniform: no
    axial current); dV/dg measured 2.2e-10 (shadow) and 1.4e-6 (ion carrier; the
    uncompensated split gives ~6e-4)."""
    r = neuron_check(["pas.mod"], "pas.g,pas.e", 0.025, 10, "--scheme", scheme)
    assert r["forward_max_abs_diff_mV"] == 0.0
    assert max(r["dv_rel_error"][1]) <= 1e-9
    assert max(r["dv_rel_error"][0]) <= bound


#: a persistent Na current whose activation is a FUNCTION of v called inside the current
#: (tests/data/conductance/napf.mod without its comments: nrnivmodl refuses non-ASCII text)
NAPF = """
NEURON {
    SUFFIX napf
    USEION na READ ena WRITE ina
    RANGE gbar
}
PARAMETER {
    gbar = 0.002 (S/cm2)
    vhalf = -52 (mV)
}
STATE { h }
INITIAL { h = 1/(1 + exp((v + 49)/10)) }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = gbar*minf(v)*h*(v - ena)
}
DERIVATIVE states {
    h' = (1/(1 + exp((v + 49)/10)) - h)/50
}
FUNCTION minf(v) { minf = 1/(1 + exp(-(v - vhalf)/4.6)) }
"""


def test_a_current_nonlinear_in_v_uses_neurons_own_slope(tmp_path):
    """NEURON linearises a mechanism's current with (I(v + 0.001) − I(v))/0.001; where I is
    not linear in v (here minf(v) inside the current) the gradient system uses that same
    quotient, so dV/dθ stays the derivative of NEURON's step. Measured, hh + napf, dt 0.025,
    30 ms: 3.4e-8 (with the analytic ∂I/∂V instead: 9.0e-6, above the FD's 2.9e-6)."""
    (tmp_path / "napf.mod").write_text(NAPF)
    r = neuron_check(["hh.mod", str(tmp_path / "napf.mod")], "hh.gnabar,napf.gbar", 0.025, 30)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= 1e-6


TAPER = """
import json, sys, tempfile
from gradgen.convert import convert
from gradgen.params import parse_param_list
from gradgen.targets.neuron.check import cable, check_cell
from gradgen.targets.neuron.model import NeuronModel
out = tempfile.mkdtemp()
convert(["mechanisms/hh.mod"], out, parse_param_list(["hh.gnabar,hh.gkbar,hh.gl"]), scheme=sys.argv[3],
        target="neuron")
report = check_cell(NeuronModel.load(out), lambda h: cable(h, ["hh"], diam=(3.0, 0.5), stimulus_nA=float(sys.argv[2])),
                    50.0, float(sys.argv[1]))
print(json.dumps(report.as_dict()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("dt, scheme, bound", [(0.1, "shadow", EXACT), (0.025, "shadow", EXACT),
                                               (0.0025, "shadow", EXACT),
                                               (0.025, "corrected", 0.01), (0.0025, "corrected", 0.001)])
def test_tapered_cable(dt, scheme, bound):
    """Taper 3 → 0.5 µm, 0.5 nA into the thick end. The shadow cell has the taper's own
    areas and axial resistances: exact (measured: see benchmarks/results/neuron_accuracy.json).
    The ion carrier's longitudinal diffusion with volume ∝ cm·diam and diffusivity ∝ diam²/Ra
    follows it to the issue's bounds for a first-order carrier. Measured: dt 0.025: 0.034 % /
    0.22 %, loss 0.098 %; dt 0.0025: 0.02 % / 0.08 %, loss 0.08 % (a floor from the taper's
    discretisation: segment diameters against NEURON's axial resistances integrated over the
    3-D points)."""
    r = run_script(TAPER, str(dt), "0.5", scheme)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= bound
    assert r["loss_gradient_rel_error"] <= bound


#: mechanism file and its NEURON name; with hh on the check cable, dt 0.025, 20 ms, shadow
#: carrier. Measured: V within 1.7e-11 mV of the originals; dV/dθ worst 8.8e-5 (nat), loss
#: gradient ≤ 7.8e-6 (kdr); the dV/dθ errors track the FD's own (its two steps differ by up to
#: 7.9e-5 here), so the bound is FD-limited, 10× above them
FD_LIMITED = 1e-3
CHANNELS = [("cahva.mod", "cahva"), ("calva.mod", "calva"), ("ih.mod", "ih"), ("ka.mod", "ka"),
            ("kdr.mod", "kdr"), ("kdr_neuron.mod", "kdrn"), ("km.mod", "km"), ("nat.mod", "nat")]


@pytest.mark.slow
@pytest.mark.parametrize("mod, name", CHANNELS)
def test_channel_set_forward_fidelity_and_gradients(mod, name):
    from gradgen.nmodl.lower import lower_file

    params = ",".join(f"{name}.{p}" for p in lower_file(MECHANISMS / mod).parameter_names())
    r = neuron_check(["hh.mod", mod], params, 0.025, 20)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= FD_LIMITED
    assert r["loss_gradient_rel_error"] <= EXACT


MSN = ROOT.parent / "shared" / "corpus" / "modeldb" / "150621"  # Mahon et al. 2000, striatal MSN


@pytest.mark.slow
@pytest.mark.skipif(not MSN.is_dir(), reason="the ModelDB corpus is not available")
# Nam.mod sets its STATE m algebraically in the solved block (m = minf in rates(v)), read as
# NEURON runs it: V within 8.4e-11 mV, dV/dθ within 1.7e-7
@pytest.mark.parametrize("mod", sorted(p.name for p in MSN.glob("*.mod")) if MSN.is_dir() else [])
def test_published_neuron_mechanisms(mod):
    """Every channel of a published NEURON model (ModelDB 150621, as its authors ship them),
    each with hh on the check cable, dt 0.025, 20 ms, all its parameters: V against the file
    compiled by nrnivmodl, dV/dθ against FD of it. Measured: V within 1.9e-11 mV, dV/dθ within
    1.5e-4 (Krpm, whose FD steps differ by 9.7e-5), loss gradients within 3.9e-8."""
    from gradgen.nmodl.lower import lower_file

    low = lower_file(MSN / mod)
    params = ",".join(f"{low.name}.{p}" for p in low.parameter_names())
    r = neuron_check(["hh.mod", str(MSN / mod)], params, 0.025, 20)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= FD_LIMITED
    assert r["loss_gradient_rel_error"] <= EXACT


@pytest.mark.slow
def test_kinetic_scheme_starts_from_neurons_own_steady_state():
    """kmarkov (KINETIC, STEADYSTATE sparse in INITIAL): NEURON finds the initial steady state
    iteratively (backward-Euler steps with a huge dt; its states are 3e-8 from the exact
    solution, which moved V by 5.9e-6 mV over 20 ms of spiking when the gradient version
    started there). The gradient version pastes the original's KINETIC block and SOLVE into its
    INITIAL (gradgen/nmodl/initial_solve.py) and computes σ(0) from the states NEURON finds.
    Measured, hh + kmarkov, dt 0.025, 20 ms: V 6.9e-12 mV from the original; dV/dθ ≤ 2.6e-7
    (FD steps differ by 2.2e-7); loss gradient 4.4e-10."""
    r = neuron_check(["hh.mod", "kmarkov.mod"], "kmarkov.gbar,kmarkov.ka,kmarkov.kb", 0.025, 20)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(r["fd_convergence"]) < 1e-3  # the FD steps agree: it measures something
    assert max(max(e) for e in r["dv_rel_error"]) <= EXACT
    assert r["loss_gradient_rel_error"] <= EXACT


NAV_STEADY = ROOT.parent / "shared" / "corpus" / "modeldb" / "230137" / "Nav11_a.mod"


@pytest.mark.slow
@pytest.mark.skipif(not NAV_STEADY.is_file(), reason="the ModelDB corpus is not available")
def test_published_steady_state_scheme_with_a_prelude():
    """Nav1.1 of ModelDB 230137 as its authors ship it: INITIAL sets Q10 (a unit inside the
    expression), then SOLVE kin STEADYSTATE sparse, whose KINETIC block calls rates(v). The
    gradient version pastes the Q10 line, the SOLVE, the block and rates(). Measured, hh +
    na11a, dt 0.025, 10 ms: V 9.2e-12 mV from the original; dV/dθ ≤ 3.4e-8."""
    r = neuron_check(["hh.mod", str(NAV_STEADY)], "na11a.gbar,na11a.C1C2b2", 0.025, 10)
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= EXACT


@pytest.mark.slow
@pytest.mark.skipif(not C4A.is_file(), reason="C4A.swc is not available")
@pytest.mark.parametrize("stimulus", [0.2, 2.0])
def test_c4a(stimulus):
    """C4A (hh + pas, into the soma; 2 nA makes it spike), dt 0.025, shadow carrier: exact at
    branch points and diameter steps too, where NEURON joins each child section to its
    parent. Measured: 0.2 nA: dV/dθ 2.0e-9 at the farthest tip, loss 3.7e-11; 2 nA: 2.9e-6,
    loss 2.1e-7 (the FD's own convergence there: 2.6e-4). The ion carrier's longitudinal
    diffusion joins a child straight to its parent's segment with the mean diffusivity,
    which is not the cable's junction: 7.6 % at the tip at any dt (README)."""
    r = neuron_check(["hh.mod", "pas.mod"], HH + ",pas.g", 0.025, 50, "--morphology", str(C4A),
                     "--stimulus", str(stimulus), "--tolerance", str(EXACT))
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= EXACT
    assert r["loss_gradient_rel_error"] <= EXACT


SIDE_BY_SIDE = """
import json, sys, tempfile
from gradgen.convert import convert
from gradgen.params import parse_param_list
from gradgen.targets.neuron.check import cable
from gradgen.targets.neuron.model import NeuronModel
out = tempfile.mkdtemp()
convert(["mechanisms/hh.mod"], out, parse_param_list(["hh.gnabar,hh.gkbar,hh.gl"]), target="neuron")
model = NeuronModel.load(out)
cell = cable(model.h, ["hh"], nseg=int(sys.argv[2]), delay=10.0, sites=(0.5, 0.999))
model.swap(cell.sections)
traces = model.run(cell.sites, float(sys.argv[3]), float(sys.argv[1]))
print(json.dumps({"t": traces.t.tolist(), "v": traces.v.tolist(), "u": traces.u.tolist()}))
"""


def side_by_side(tmp_path: Path, n_cv: int, dt: float = 0.0025, t_end: float = 30.0) -> tuple[float, float, int]:
    """max |V_NEURON − V_Arbor| (mV), the worst relative L2 difference of dV/dθ, Arbor's spikes."""
    from gradgen.checks.cells import cable_cell_spec
    from gradgen.convert import convert
    from gradgen.params import parse_param_list
    from gradgen.targets.arbor.model import GradientModel

    convert([MECHANISMS / "hh.mod"], tmp_path / "arbor", parse_param_list([HH]))
    spec = cable_cell_spec(["hh"], n_cv=n_cv, stimulus_nA=0.1, t_on=10.0)
    arb = GradientModel.load(tmp_path / "arbor").simulate(spec, ["(location 0 0.5)", "(location 0 1)"], t_end, dt)
    nrn = run_script(SIDE_BY_SIDE, str(dt), str(n_cv + 1), str(t_end))
    t = np.array(nrn["t"])
    v = np.array([np.interp(arb.t, t, x) for x in nrn["v"]])
    u = np.array([[np.interp(arb.t, t, x) for x in row] for row in nrn["u"]])
    spikes = int(np.sum((arb.v[0][1:] >= 0) & (arb.v[0][:-1] < 0)))
    u_diff = max(float(np.linalg.norm(u[s, k] - arb.dv[s, k]) / np.linalg.norm(arb.dv[s, k]))
                 for s in range(2) for k in range(3))
    return float(np.max(np.abs(v - arb.v))), u_diff, spikes


@pytest.mark.slow
def test_arbor_and_neuron_give_the_same_gradients(tmp_path):
    """The same hh.mod and θ in both simulators: uniform cable 500 µm × diam 1 µm (Ra 100),
    0.1 nA from 10 ms, dt 0.0025, 30 ms (two spikes), V and dV/dθ at the middle and the far
    end. The simulators discretise the cable differently (Arbor: n CVs, NEURON: n + 1
    segment centres); what differs is that, and it halves when n doubles. Measured, worst over θ and
    sites: n = 100: 2.6 %, 200: 1.3 %, 400: 0.66 % (V: 1.6, 0.80, 0.40 mV)."""
    v200, u200, spikes = side_by_side(tmp_path / "a", 200)
    v400, u400, _ = side_by_side(tmp_path / "b", 400)
    print(f"side by side: n 200: {v200:.3g} mV, {u200:.3g}; n 400: {v400:.3g} mV, {u400:.3g}")
    assert spikes >= 2  # the comparison covers spikes
    assert u400 <= 0.01 and v400 <= 0.5
    assert u400 <= u200 / 1.8 and v400 <= v200 / 1.8  # the difference is the discretisation


DROP_IN = """
import json, sys, tempfile
import numpy as np
from neuron import h
from gradgen.targets.neuron import instrument
from gradgen.targets.neuron.build import build_library
from gradgen.targets.neuron.model import simulate
# the user's model: their own library (kdrn, compiled by nrnivmodl) and NEURON's built-in pas
h.nrn_load_dll(str(build_library([("kdr_neuron.mod", open("mechanisms/kdr_neuron.mod").read())])))
h.usetable_kdrn = 0  # the gradient version computes the rates exactly, not from the TABLE
soma, dend = h.Section(name="soma"), h.Section(name="dend")
dend.connect(soma(1))
soma.L, soma.diam = 20.0, 20.0  # a diameter step between sections: the shadow cell has it too
dend.L, dend.diam, dend.nseg = 300.0, 2.0, 31
for sec in (soma, dend):
    sec.Ra = 100.0
    sec.insert("kdrn")
    sec.insert("pas")
soma.gkbar_kdrn = 0.05  # values the model set, which the swap must keep
dend.g_pas = 2e-4
stim = h.IClamp(soma(0.5))
stim.delay, stim.dur, stim.amp = 1.0, 1e9, 0.3
sites = [soma(0.5), dend(0.9)]
run = lambda: simulate(h, sites, 30.0, 0.025).v
plain = run()
def shifted(step, which):
    for sec in ((soma, dend) if which == "gkbar" else (dend,)):
        for seg in sec:
            if which == "gkbar":
                seg.kdrn.gkbar += step
            else:
                seg.pas.g += step
    return run()
fd = []
for which, step in (("gkbar", 1e-6), ("g", 1e-8)):
    up = shifted(step, which); down = shifted(-2 * step, which); shifted(step, which)
    fd.append((up - down) / (2 * step))
model = instrument(h, ["kdrn.gkbar", "pas.g@dend"], ["mechanisms/kdr_neuron.mod", "mechanisms/pas.mod"],
                   tempfile.mkdtemp(), regions={"dend": [dend]})
traces = model.run(sites, 30.0, 0.025)
err = [[float(np.linalg.norm(traces.u[s, k] - fd[k][s]) / np.linalg.norm(fd[k][s])) for s in range(2)] for k in range(2)]
print(json.dumps({"forward": float(np.max(np.abs(traces.v - plain))), "errors": err,
                  "kept": [soma(0.5).grad_kdrn.gkbar, dend(0.5).grad_pas.g]}))
"""


def test_drop_in_on_a_model_built_in_neuron():
    """`instrument` on a model built the NEURON way (its own kdrn library, the built-in pas, a
    soma and a dendrite, θ = kdrn.gkbar everywhere and pas.g on the dendrite): values kept,
    V unchanged, dV/dθ against FD of the untouched model. Measured at dt 0.025: V 3e-14 mV
    apart; dV/dθ within 1.5e-5."""
    r = run_script(DROP_IN)
    assert r["kept"] == [0.05, 2e-4]
    assert r["forward"] <= FORWARD_MV
    assert max(max(e) for e in r["errors"]) <= EXACT


#: a published model with its own hoc (ModelDB 95960, Schmidt-Hieber et al. 2007): never copied
#: here; set GRADGEN_MODELDB_95960 to a checkout of github.com/ModelDBRepository/95960
MODELDB_95960 = Path(os.environ.get("GRADGEN_MODELDB_95960", ROOT.parent / "shared" / "modeldb-models" / "95960"))


@pytest.mark.skipif(not (MODELDB_95960 / "cell_2" / "membrane.hoc").is_file(),
                    reason="ModelDB 95960 is not available (set GRADGEN_MODELDB_95960 to its folder)")
def test_published_model_with_its_own_hoc():
    """examples/neuron_modeldb.py: the authors' hoc builds the reconstructed granule cell (34
    sections, 3-D points, per-section spine scaling, their spines.mod), one ``instrument``
    call, dV/dθ at soma and dendrite against central FD of the untouched model. Measured at
    dt 0.025: V 7e-15 mV apart; dV/dg_pas 6.2e-11, dV/de_pas@den 2.6e-12."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "neuron_modeldb.py"), str(MODELDB_95960)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["sections"] == 34 and r["peak_dV_mV"] > 10  # the authors' cell, and the step moves it
    assert r["forward_max_abs_diff_mV"] <= FORWARD_MV
    assert max(max(e) for e in r["dv_rel_error"]) <= EXACT


#: a second Ca pool (cad.mod renamed): two readers of one coupled current
CAD2 = (MECHANISMS / "cad.mod").read_text().replace("SUFFIX cad", "SUFFIX cad2")


@pytest.mark.parametrize("mods, message", [
    (["cahva.mod", "cad.mod", "cad2", "sk.mod"],  # the pool empties the current's stores after using them
     "cad2.mod:4:12: 'cad2' reads the ion current 'ica' that 'cad' reads too"),
])
def test_what_the_neuron_target_refuses(tmp_path, mods, message):
    """One line with file:line:col and a hint, exit 2, no output directory."""
    (tmp_path / "cad2.mod").write_text(CAD2)
    files = [str(MECHANISMS / m) if m.endswith(".mod") else str(tmp_path / f"{m}.mod") for m in mods]
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "convert", *files,
                           "--all-params", "--target", "neuron", "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert message in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


TUNE = f"""
[model]
target = "neuron"
morphology = "{ROOT}/morphologies/io_like.swc"
cv_policy = "extent:20"
mechanisms = ["{ROOT}/mechanisms/hh.mod"]
probe = "soma"

[model.paint]
all = ["hh"]

[simulation]
t_end = 50.0
dt = 0.025
sample_dt = 0.5

[[protocol]]
name = "step"
stimuli = [{{ location = "soma", delay = 5.0, duration = 40.0, amplitude = 0.3 }}]

[tune]
parameters = ["hh.gnabar", "hh.gkbar", "hh.gl"]
transform = "log"

[target.values]
"hh.gnabar" = 0.13
"hh.gkbar" = 0.033

[optimizer]
method = "lm"
iterations = 12

[output]
directory = "out"
"""


def test_tune_with_the_neuron_target(tmp_path):
    """`gradgen tune` with target = "neuron": HH on the bundled IO-like morphology in NEURON,
    three conductances from the .mod defaults to a spiking target with gnabar and gkbar
    changed by 8 % and 8.3 %. Measured: LM from 20.6 mV RMS to 1.3e-12 mV in 9 runs, the
    target values recovered."""
    (tmp_path / "tune.toml").write_text(TUNE)
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "tune", str(tmp_path / "tune.toml")],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((tmp_path / "out" / "results.json").read_text())
    assert r["start_rms_mV"] > 10  # the target is far in V: the spikes move
    assert r["final_rms_mV"] < 1e-6
    for p in r["parameters"]:
        assert p["final"] == pytest.approx(p["target"], rel=1e-6)


TUNE_GRADIENT = """
import json, sys, tempfile
import numpy as np
from pathlib import Path
from gradgen.tuning.config import load_config
from gradgen.tuning.run import setup
problem = setup(load_config(sys.argv[1]), Path(tempfile.mkdtemp())).problem
z = problem.param.z0() + np.array([0.05, -0.05, 0.03])
gradient = problem.evaluate(z).gradient
fd = []
for i in range(len(z)):
    up, down = z.copy(), z.copy()
    up[i] += 1e-5
    down[i] -= 1e-5
    loss = lambda x: problem.loss_of_voltages(problem.voltages(problem.param.model_values(x)))
    fd.append((loss(up) - loss(down)) / 2e-5)
print(json.dumps({"gradient": gradient.tolist(), "fd": fd}))
"""


def test_neuron_tuning_gradient_matches_finite_differences(tmp_path):
    """dL/dz of the NEURON tuning problem (log transform, a spiking protocol) against central
    FD of its loss in z. Measured: within 3.5e-6 (the FD's own error)."""
    (tmp_path / "tune.toml").write_text(TUNE)
    r = run_script(TUNE_GRADIENT, str(tmp_path / "tune.toml"))
    gradient, fd = np.array(r["gradient"]), np.array(r["fd"])
    assert np.all(np.abs(gradient - fd) <= 1e-4 * np.abs(fd))


def test_neuron_tune_locations_are_regions(tmp_path):
    """With target = "neuron" a location is a region name: an expression is one line at file:line:col."""
    (tmp_path / "tune.toml").write_text(TUNE.replace('probe = "soma"', 'probe = "(location 0 0.5)"'))
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "tune", str(tmp_path / "tune.toml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert re.search(r"tune.toml:\d+:\d+: location '\(location 0 0.5\)'", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
