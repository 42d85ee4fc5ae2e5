"""The command line: exit codes, one-line errors with positions, nothing half-written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradgen.cli import main

MECHANISMS = Path(__file__).resolve().parent.parent / "mechanisms"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradgen.cli", *args], capture_output=True, text=True)


def test_convert_writes_mechanisms_and_manifest(tmp_path):
    out = tmp_path / "out"
    assert main(["convert", str(MECHANISMS / "hh.mod"), str(MECHANISMS / "pas.mod"), "-o", str(out),
                 "--params", "hh.gnabar@soma,pas.g"]) == 0
    manifest = json.loads((out / "gradients.json").read_text())
    assert [p["name"] for p in manifest["parameters"]] == ["hh.gnabar@soma", "pas.g"]
    assert manifest["parameters"][0]["region"] == "soma"
    assert [m["gradient"] for m in manifest["mechanisms"]] == ["grad_hh", "grad_pas"]
    assert sorted(p.name for p in out.glob("*.mod")) == ["grad_hh.mod", "grad_pas.mod", "gradz_hub.mod"]
    assert (out / "original" / "hh.mod").read_text() == (MECHANISMS / "hh.mod").read_text()


def test_syntax_error_is_one_line_with_position_and_leaves_nothing(tmp_path):
    bad = write(tmp_path / "bad.mod", "NEURON {\n    SUFFIX bad\n}\nBREAKPOINT {\n    x = (1 +\n}\n")
    out = tmp_path / "out"
    proc = run_cli("convert", str(bad), "-o", str(out), "--all-params")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:6:1" in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mod"]  # no staging directory left


def test_verbatim_is_refused_with_position(tmp_path, capsys):
    text = (MECHANISMS / "pas.mod").read_text().replace("BREAKPOINT {", "VERBATIM\n  x = 1;\nENDVERBATIM\n\nBREAKPOINT {")
    mod = write(tmp_path / "verb.mod", text)
    line = text.splitlines().index("VERBATIM") + 1
    assert main(["convert", str(mod), "-o", str(tmp_path / "out"), "--all-params"]) == 2
    err = capsys.readouterr().err
    assert f"{mod}:{line}:1" in err and "VERBATIM" in err
    assert not (tmp_path / "out").exists()


def test_unknown_parameter_keeps_existing_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(MECHANISMS / "hh.mod"), "-o", str(out), "--params", "hh.gl"]) == 0
    before = {p.name: p.read_text() for p in out.rglob("*") if p.is_file()}
    assert main(["convert", str(MECHANISMS / "hh.mod"), "-o", str(out), "--params", "hh.gnabr"]) == 2
    err = capsys.readouterr().err
    assert "'hh' has no parameter 'gnabr'" in err and "hh.mod:" in err
    assert {p.name: p.read_text() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("spec", ["hh", "hh.gl@", "nope.g"])
def test_bad_parameter_names(tmp_path, spec, capsys):
    assert main(["convert", str(MECHANISMS / "hh.mod"), "-o", str(tmp_path / "o"), "--params", spec]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_check_json_reports_errors_per_parameter(capsys):
    code = main(["check", str(MECHANISMS / "pas.mod"), "--params", "pas.g,pas.e", "--dt", "0.025",
                 "--tfinal", "20", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] is True
    assert report["dt"] == 0.025 and report["forward_max_abs_diff_mV"] < 1e-8
    assert [p["name"] for p in report["parameters"]] == ["pas.g", "pas.e"]
    assert all(p["rel_error"] < 0.01 for p in report["parameters"])


def test_check_json_reports_bad_input(tmp_path, capsys):
    code = main(["check", str(tmp_path / "missing.mod"), "--all-params", "--json"])
    assert code == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_build_writes_a_loadable_catalogue(tmp_path):
    import arbor

    out = tmp_path / "out"
    assert main(["convert", str(MECHANISMS / "pas.mod"), "-o", str(out), "--params", "pas.g"]) == 0
    assert main(["build", str(out), "-o", str(tmp_path / "cat.so")]) == 0
    names = set(arbor.load_catalogue(str(tmp_path / "cat.so")))
    assert {"grad_pas", "gradz_hub"} <= names


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "C4A.swc").exists(),
                    reason="../shared/data/C4A.swc not present")
def test_check_on_a_reconstructed_morphology(capsys):
    """`check --morphology --carrier ion` runs the FD check on the SWC cell through the ion
    carrier's geometry transform."""
    c4a = Path(__file__).resolve().parents[2] / "shared" / "data" / "C4A.swc"
    code = main(["check", str(MECHANISMS / "hh.mod"), "--params", "hh.gnabar,hh.gkbar",
                 "--morphology", str(c4a), "--stimulus", "0.2", "--dt", "0.01", "--json", "--carrier", "ion"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"]
    assert report["geometry_max_abs_dV_mV"] <= 1e-7  # measured 5.9e-9 mV
    # measured 0.42 % (dV/dθ) and 0.24 % (loss gradient) with hh.gl as well
    assert max(p["rel_error"] for p in report["parameters"]) < 0.02
    assert report["loss_gradient_rel_error"] < 0.02


def test_check_with_a_missing_morphology_is_bad_input(tmp_path, capsys):
    code = main(["check", str(MECHANISMS / "hh.mod"), "--params", "hh.gnabar",
                 "--morphology", str(tmp_path / "nothing.swc")])
    assert code == 2
    assert "nothing.swc: no such morphology file" in capsys.readouterr().err
