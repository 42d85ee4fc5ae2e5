"""Bad input: exit 2, exactly one line on stderr, no traceback, nothing changed outside the output.

Each case runs the real CLI in a subprocess (what a user sees), in a scratch working
directory; inputs are written there or read from the project, and every file of the scratch
directory and of the project's input folders is compared before and after.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradgen.errors import GradgenError, GradgenWarning, NonFiniteSimulation
from gradgen.strict_json import strict_json
from gradgen.targets.arbor.blowup import first_nonfinite

ROOT = Path(__file__).resolve().parents[1]
PAS = ROOT / "mechanisms" / "pas.mod"
HH = ROOT / "mechanisms" / "hh.mod"
ARBOR_PAS = ROOT.parent / "shared" / "corpus" / "arbor-catalogue" / "default" / "pas.mod"
INPUT_DIRS = [ROOT / "mechanisms", ROOT / "morphologies", ROOT / "examples"]
POSITION = r"[^:\s]+:\d+:\d+: "  # file:line:col at the start of the message


def _snapshot(*roots: Path, skip: Path | None = None) -> dict[str, str]:
    files = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not (skip and skip in path.parents):
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def gradgen(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gradgen.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def refused(args: list[str], cwd: Path, message: str, output: Path | None = None) -> str:
    """Run, assert the bad-input contract, return the one stderr line."""
    before = _snapshot(cwd, *INPUT_DIRS, skip=output)
    result = gradgen(args, cwd)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert _snapshot(cwd, *INPUT_DIRS, skip=output) == before, "a file outside the output changed"
    if output is not None:
        assert not output.exists(), "a refused command left output behind"
    return lines[0]


def write_pas(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = PAS.read_text()
    assert old in text
    path = tmp_path / f"{name}.mod"
    path.write_text(text.replace(old, new))
    return path


# ---------------------------------------------------------------- NMODL that used to crash

def test_a_sum_of_500_terms_converts(tmp_path):
    terms = " + ".join(f"{i}*g" for i in range(500))
    mod = write_pas(tmp_path, "sum500", "i = g*(v - e)", f"i = ({terms})*(v - e)")
    result = gradgen(["convert", mod, "-o", tmp_path / "out", "--all-params"], tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("nest", ["-(", "exp(", "("])
def test_deep_nesting(tmp_path, nest):
    expr = nest * 500 + "g" + ")" * 500
    mod = write_pas(tmp_path, "deep", "i = g*(v - e)", f"i = {expr}*(v - e)")
    args = ["convert", mod, "-o", tmp_path / "out", "--all-params"]
    if nest == "(":  # bare parentheses vanish in the parse tree: this one is fine
        assert gradgen(args, tmp_path).returncode == 0
    else:
        refused(args, tmp_path, POSITION + r"an expression nests \d+ levels deep", tmp_path / "out")


def test_long_suffix(tmp_path):
    mod = write_pas(tmp_path, "long", "SUFFIX pas", "SUFFIX " + "p" * 300)
    refused(["convert", mod, "-o", tmp_path / "out", "--all-params"], tmp_path,
            POSITION + "the mechanism name is 300 characters long", tmp_path / "out")


# ---------------------------------------------------------------- output paths

def test_output_parent_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("the user's file\n")
    refused(["convert", PAS, "-o", tmp_path / "afile" / "out", "--all-params"], tmp_path,
            r"afile/out: cannot create it \(Not a directory\)")  # gradgen.outputs names the path


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """A full disk while the output is written (ENOSPC injected into the staged writes, in
    process): exit 2, one line, and neither output nor staging files left behind."""
    import errno

    from gradgen.cli import main

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    assert main(["convert", str(PAS), "-o", str(out), "--all-params"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_output_not_writable(tmp_path):
    """chmod does not stop root, so the unwritable place is one no one may write: /proc."""
    refused(["convert", PAS, "-o", "/proc/gradgen-test-out", "--all-params"], tmp_path,
            r"refusing to write to /proc/gradgen-test-out: cannot create it")  # gradgen.outputs


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_in_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(["convert", PAS, "-o", locked / "out", "--all-params"], tmp_path, "Permission denied")
    finally:
        locked.chmod(0o755)


# ---------------------------------------------------------------- check options

@pytest.mark.parametrize("option, value", [("--dt", "0"), ("--dt", "nan"), ("--tfinal", "-5"),
                                           ("--stimulus", "nan"), ("--dt", "100")])
def test_check_options(tmp_path, option, value):
    refused(["check", PAS, "--all-params", option, value], tmp_path, re.escape(option))


def test_check_json_error_is_valid_json(tmp_path):
    result = gradgen(["check", PAS, "--all-params", "--dt", "nan", "--json"], tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stdout)["ok"] is False


def test_strict_json_writes_null_for_nan():
    text = strict_json({"a": math.nan, "b": [1.0, math.inf], "c": "x"})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": "x"}


def test_unknown_region_label(tmp_path):
    refused(["check", PAS, "--params", "pas.g@nosuchregion", "--tfinal", "1", "--dt", "0.1"],
            tmp_path, "no region label 'nosuchregion'")


# ---------------------------------------------------------------- SWC

@pytest.mark.parametrize("name, text, message", [
    ("empty", "", "has no samples"),
    ("garbage", "garbage here\n\x01\x02 x\n", "has 7 fields"),
    ("nan", (ROOT / "morphologies" / "io_like.swc").read_text().replace(
        "5 3 31.820", "5 3 nan", 1), "not finite"),
    ("binary", None, "not a text file"),
])
def test_bad_swc(tmp_path, name, text, message):
    swc = tmp_path / f"{name}.swc"
    if text is None:
        swc.write_bytes(b"1 1 0 0 0 1 -1\n\xff\xfe\x00\x81")
    else:
        swc.write_text(text)
    refused(["check", PAS, "--all-params", "--tfinal", "1", "--dt", "0.1", "--morphology", swc],
            tmp_path, re.escape(str(swc)) + r":\d+:\d+: .*" + message)


# ---------------------------------------------------------------- tuning configs

def _config(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "examples" / "io.toml").read_text()
    text = text.replace('"../', f'"{ROOT}/').replace('directory = "../io-tuning"',
                                                     f'directory = "{tmp_path / "tuned"}"')
    assert old in text
    path = tmp_path / "tune.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, message", [
    ('"io_soma.g_CaL" = [0.0, 1.0]', '"io_soma.g_CaL" = ["a", "b"]', r"tune.toml:\d+:1: \[tune.bounds\]"),
    ("# windows = [[200.0, 1000.0]]", 'windows = [[5, "x"]]', r"tune.toml:\d+:1: \[simulation\] windows"),
    ("t_end = 1000.0", "t_end = inf", r"tune.toml:\d+:1: \[simulation\] t_end must be a finite"),
    ('probe = "soma"', 'probe = "nosuch"', r"tune.toml:\d+:1: \[model\] probe 'nosuch'"),
    ("iterations = 300", "iteratons = 5", r"tune.toml:\d+:1: \[optimizer\] unknown key 'iteratons'"),
    ("iterations = 300", "iterations = 2.5", r"tune.toml:\d+:1: \[optimizer\] iterations must be a whole"),
    ("v_init = -60.0", "v_init = nan", r"tune.toml:\d+:1: \[model\] v_init must be a finite"),
    ('"io_soma.g_CaL" = 0.0003', '"io_soma.g_CaL" = "x"', r"\[target.values\] io_soma.g_CaL must be a number"),
    ("[output]", "[outptu]", r"unknown section \[outptu\]"),
])
def test_bad_tune_config(tmp_path, old, new, message):
    config = _config(tmp_path, old, new)
    refused(["tune", config], tmp_path, message, tmp_path / "tuned")


# ---------------------------------------------------------------- silently wrong NMODL

@pytest.mark.parametrize("name, old, new, message", [
    ("zero", "i = g*(v - e)", "i = g*(v - e)/0", r"the current 'i' contains a division by zero"),
    ("huge", "g = 0.001", "g = 1e400", r"PARAMETER 'g' = inf: not a finite float64"),
    ("hugeexpr", "i = g*(v - e)", "i = 1e400*g*(v - e)", r"the current 'i' contains (an infinity|the number .* beyond)"),
    ("stv", "PARAMETER {", "STATE { v }\nPARAMETER {", r"STATE 'v' has the name of a simulator built-in"),
    ("pari", "e = -70 (mV)", "e = -70 (mV)\n    i = 3", r"PARAMETER 'i' is also a current"),
    ("ggw", "e = -70 (mV)", "e = -70 (mV)\n    gg_w0 = 1", r"PARAMETER 'gg_w0' has the form of a name gradgen generates"),
    ("gsgd", "e = -70 (mV)", "e = -70 (mV)\n    gsgd = 1", r"PARAMETER 'gsgd' has the form"),
    ("gk0", "PARAMETER {", "STATE { gk0 }\nPARAMETER {", r"STATE 'gk0' has the form"),
    ("ion", "NONSPECIFIC_CURRENT i", "NONSPECIFIC_CURRENT i\n    USEION gg0 READ gg0d", r"ion 'gg0'"),
    ("hub", "SUFFIX pas", "SUFFIX gradz_hub", r"'gradz_hub' is the name of the mechanism gradgen generates"),
])
def test_silently_wrong_nmodl(tmp_path, name, old, new, message):
    mod = write_pas(tmp_path, name, old, new)
    refused(["convert", mod, "-o", tmp_path / "out", "--all-params"], tmp_path,
            POSITION + message, tmp_path / "out")


@pytest.mark.skipif(not ARBOR_PAS.exists(), reason="../shared/corpus (Arbor's catalogue) not present")
def test_global_parameter_is_a_theta(tmp_path):
    """GLOBAL parameters are θ now (tests/test_globals.py checks their gradients): --all-params
    takes Arbor's GLOBAL pas.e with pas.g, silently and without a warning."""
    result = gradgen(["convert", ARBOR_PAS, "-o", tmp_path / "out", "--all-params"], tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr
    names = [p["name"] for p in json.loads((tmp_path / "out" / "gradients.json").read_text())["parameters"]]
    assert names == ["pas.g", "pas.e"]


def test_manifest_has_no_bare_nan(tmp_path):
    result = gradgen(["convert", HH, "-o", tmp_path / "out", "--all-params"], tmp_path)
    assert result.returncode == 0
    json.loads((tmp_path / "out" / "gradients.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"bare {c} in the manifest"))


# ---------------------------------------------------------------- simulations that blow up

def test_first_nonfinite_names_time_site_and_what():
    t = np.arange(5.0)
    v = np.zeros((2, 5))
    dv = np.zeros((2, 3, 5))
    assert first_nonfinite(t, v, dv, ["a", "b"]) is None
    v[1, 3] = np.nan
    dv[0, 2, 2] = np.inf
    error = first_nonfinite(t, v, dv, ["a", "b"])
    assert isinstance(error, NonFiniteSimulation) and isinstance(error, GradgenError)
    assert (error.what, error.t, error.site) == ("dV/dθ2", 2.0, "a")


def test_negative_conductance_blows_up_with_time_and_site(tmp_path):
    from gradgen.checks.cells import cable_cell_spec
    from gradgen.convert import convert
    from gradgen.targets.arbor.model import GradientModel

    convert([HH], tmp_path / "out", None)
    model = GradientModel.load(tmp_path / "out")
    spec = cable_cell_spec(["hh"], stimulus_nA=0.1)
    for gradients in (True, False):
        with pytest.raises(NonFiniteSimulation) as caught:
            model.simulate(spec, ["(location 0 0)"], 5.0, 0.025, gradients=gradients,
                           values={"hh.gl": -1.0})
        # measured: V overflows at 0.675 ms (gradient cell) / 0.7 ms (original), at the first CV
        assert 0 < caught.value.t < 5.0 and caught.value.site.startswith("(location 0")
        assert "blew up" in str(caught.value)


def test_coarse_dt_warns_and_fine_dt_does_not(tmp_path):
    import warnings

    from gradgen.checks.cells import cable_cell_spec
    from gradgen.convert import convert
    from gradgen.targets.arbor.model import GradientModel
    from gradgen.targets.arbor.step_check import MAX_DT_OVER_TAU_MIN

    # the calibration: HH's 1 % crossing at 0.0107 ms over τ_min = 1/156.3 ms
    assert MAX_DT_OVER_TAU_MIN == pytest.approx(0.0107 * 156.3)
    convert([HH], tmp_path / "out", None)
    model = GradientModel.load(tmp_path / "out", carrier="ion")  # the exact carrier has no coarse-dt error to warn of
    spec = cable_cell_spec(["hh"], stimulus_nA=0.1)
    with pytest.warns(GradgenWarning, match="dt 10 ms is coarse"):
        model.simulate(spec, ["(location 0 0)"], 20.0, 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradgenWarning)
        model.simulate(spec, ["(location 0 0)"], 1.0, 0.01)


# ---------------------------------------------------------------- checkpoints and build tools

@pytest.mark.parametrize("keep", [0, 10, 0.5, -5])
def test_truncated_checkpoint(tmp_path, keep):
    """A truncated checkpoint is one clear error, never a traceback or a silent fresh start."""
    from gradgen.tuning.checkpoint import Checkpoint

    checkpoint = Checkpoint(tmp_path / "adam.npz", {"method": "adam"})
    checkpoint.save({"history": {}}, {"z": np.ones(3)})
    data = checkpoint.path.read_bytes()
    checkpoint.path.write_bytes(data[:int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(GradgenError, match=r"checkpoint .*adam.npz: cannot be read .* delete it"):
        checkpoint.load()


def test_build_tool_failure_is_one_line_without_the_temporary_path():
    from gradgen.targets.arbor.build import build_catalogue

    with pytest.raises(GradgenError) as caught:
        build_catalogue({"bad.mod": "NEURON { SUFFIX bad }\nBREAKPOINT { x = }\n"}, "badcat")
    message = str(caught.value)
    assert "\n" not in message and "/tmp" not in message and ".cache" not in message
    assert "modcc failed: error: mod/bad.mod:(line 2,col 18) unexpected token" in message


COUPLED = """NEURON { SUFFIX coupled NONSPECIFIC_CURRENT i RANGE g }
PARAMETER { g = 0.001 (S/cm2) e = -70 (mV) }
STATE { a b }
INITIAL { a = 0 b = 1 }
BREAKPOINT {
    SOLVE states METHOD cnexp
    i = g*a*(v - e)
}
DERIVATIVE states {
    a' = b - a
    b' = a - b
}
"""


def test_coupled_odes_under_cnexp(tmp_path):
    """modcc refuses them ("System not diagonal linear for cnexp"); NEURON steps them one after
    another (ModelDB 267391 icat), which gradgen reproduces: they convert, as with sparse."""
    mod = tmp_path / "coupled.mod"
    for method in ("cnexp", "sparse"):
        mod.write_text(COUPLED.replace("METHOD cnexp", f"METHOD {method}"))
        out = tmp_path / f"out_{method}"
        assert gradgen(["convert", mod, "-o", out, "--all-params"], tmp_path).returncode == 0


def test_population_member_that_blows_up_gets_an_infinite_loss(tmp_path):
    """CMA-ES ranks an infinite loss last, so one bad candidate must not stop the run."""
    from gradgen.checks.cells import cable_cell_spec
    from gradgen.convert import convert
    from gradgen.params import ParamRef
    from gradgen.targets.arbor.model import GradientModel
    from gradgen.tuning.params import Parameterisation, TunedParameter
    from gradgen.tuning.problem import Protocol, TuningProblem

    convert([HH], tmp_path / "out", [ParamRef("hh", "gl")])
    model = GradientModel.load(tmp_path / "out")
    protocol = Protocol(t_end=5.0, dt=0.025, sample_dt=0.5)
    problem = TuningProblem(model, cable_cell_spec(["hh"], stimulus_nA=0.1), "(location 0 0.5)",
                            protocol, Parameterisation([TunedParameter("hh.gl", ("hh.gl",), 0.0003)]),
                            np.full(len(protocol.times()), -65.0))
    with pytest.warns(GradgenWarning, match=r"1 of 2 population members blew up \(member 1: .*"
                                            r"V is not finite from t = "):
        good, bad = problem.population([[1.0], [-3000.0]])  # gl = 0.0003 and -0.9 S/cm²
    assert math.isfinite(good.loss) and bad.loss == math.inf
