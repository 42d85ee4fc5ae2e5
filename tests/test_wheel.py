"""A wheel (not the editable install) works outside the source tree.

The wheel is built from this checkout and installed into a fresh virtual environment that
sees the test environment's third-party packages (arbor, sympy, …) but not the editable
gradgen; `gradgen convert`, `build`, `check` and `demo` then run from a temporary directory.
This catches package data left out of the wheel (templates, the grammar, the bundled
mechanisms) and paths into the source tree.
"""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ directory of a fresh venv with gradgen installed from a wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp / "dist"), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp / "dist").glob("gradgen-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    purelib = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # third-party packages from the test environment; its .pth files (the editable gradgen)
    # are not processed for a directory named in a .pth file
    Path(purelib, "test-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", purelib, str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / "python"), "-m", "gradgen.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_wheel_imports_the_installed_copy(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(installed / "python"), "-c",
                           "import gradgen, gradgen.resources as r; print(gradgen.__file__); "
                           "print(r.mechanisms_dir())"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    package, mechanisms = proc.stdout.split()
    assert not Path(package).is_relative_to(ROOT), package
    assert not Path(mechanisms).is_relative_to(ROOT) and (Path(mechanisms) / "io").is_dir()


def test_wheel_converts_builds_checks_and_runs_the_demo(installed, tmp_path):
    mod = tmp_path / "hh.mod"
    mod.write_text((ROOT / "mechanisms" / "hh.mod").read_text())
    steps = [
        ("convert", str(mod), "-o", "out", "--params", "hh.gnabar,hh.gkbar"),
        ("build", "out", "-o", "out/gradgen.so"),
        ("check", str(mod), "--params", "hh.gnabar", "--tfinal", "20", "--json"),
        ("demo", "-o", "demo"),
    ]
    for args in steps:
        proc = run(installed, tmp_path, *args)
        assert proc.returncode == 0, f"gradgen {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "out" / "gradz_hub.mod").exists() and (tmp_path / "out" / "gradgen.so").exists()
    assert list((tmp_path / "demo").glob("*.png"))
