"""A user's files are sacred: what gradgen refuses to write, and what it leaves alone.

Each case runs the command line as a user would (a subprocess) and asserts the exit
status, the one-line message and, by hashing the trees before and after, that no file
outside the output directory changed (and, where the command is refused, none inside).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradgen.errors import GradgenError
from gradgen.outputs import OWNER_FILE

ROOT = Path(__file__).resolve().parent.parent
MECHANISMS = ROOT / "mechanisms"
HH, PAS = MECHANISMS / "hh.mod", MECHANISMS / "pas.mod"


def run_cli(*args: str | Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradgen.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})})


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): its content hash or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with one line on stderr that holds ``words`` and a hint; no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("gradgen: error: ") and "(hint: " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's directory: a thesis, data in a subfolder, nothing gradgen wrote."""
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "thesis.txt").write_text("three years of work\n")
    (proj / "sub" / "data.csv").write_text("t,v\n0,-65\n")
    return proj


# -- output directories that are not gradgen's


def test_convert_refuses_a_directory_with_the_users_files(tmp_path, project):
    before = tree(tmp_path)
    refused(run_cli("convert", HH, "-o", project, "--all-params"),
            str(project), "holds files that gradgen did not write")
    assert tree(tmp_path) == before


def test_convert_refuses_the_working_directory(tmp_path, project):
    before = tree(tmp_path)
    refused(run_cli("convert", HH, "-o", ".", "--all-params", cwd=project), "did not write")
    assert tree(tmp_path) == before


def test_convert_refuses_a_file(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    before = tree(tmp_path)
    refused(run_cli("convert", HH, "-o", precious, "--all-params"), "is a file, not a directory")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("target", ["users", "empty", "dangling"])
def test_convert_refuses_a_symbolic_link(tmp_path, project, target):
    """Whatever the link points to (the user's files, an empty folder, nothing)."""
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to({"users": project, "empty": tmp_path / "empty", "dangling": tmp_path / "nowhere"}[target])
    before = tree(tmp_path)
    refused(run_cli("convert", HH, "-o", link, "--all-params"), "symbolic link")
    assert tree(tmp_path) == before


def test_tune_and_demo_refuse_a_directory_with_the_users_files(tmp_path, project):
    config = tmp_path / "tune.toml"
    config.write_text(tune_config("adam", 1, output=project))
    before = tree(tmp_path)
    refused(run_cli("tune", config), "did not write")
    refused(run_cli("demo", "-o", project / "thesis.txt"), "is a file")
    assert tree(tmp_path) == before


# -- gradgen's own output directory


def test_reconvert_keeps_the_users_extras_and_drops_what_it_no_longer_writes(tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", HH, PAS, "-o", out, "--all-params").returncode == 0
    assert (out / "grad_pas.mod").is_file() and (out / OWNER_FILE).is_file()
    (out / "notes.txt").write_text("mine\n")
    (out / "original" / "my_variant.mod").write_text("mine too\n")
    (out / "plots").mkdir()
    (out / "plots" / "fig.png").write_bytes(b"\x89PNG")
    assert run_cli("convert", HH, "-o", out, "--params", "hh.gnabar").returncode == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "original" / "my_variant.mod").read_text() == "mine too\n"
    assert (out / "plots" / "fig.png").read_bytes() == b"\x89PNG"
    assert not (out / "grad_pas.mod").exists() and not (out / "original" / "pas.mod").exists()
    assert [p["name"] for p in json.loads((out / "gradients.json").read_text())["parameters"]] == ["hh.gnabar"]


def test_a_failed_convert_leaves_the_earlier_output_as_it_was(tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", HH, "-o", out, "--all-params").returncode == 0
    (out / "notes.txt").write_text("mine\n")
    bad = tmp_path / "bad.mod"
    bad.write_text(PAS.read_text().replace("SUFFIX pas", "SUFFIX hh2\n}\n}"))
    before = tree(tmp_path)
    proc = run_cli("convert", HH, bad, "-o", out, "--all-params")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert tree(tmp_path) == before  # no staging file, nothing replaced


def test_a_users_file_at_a_generated_name_is_not_replaced(tmp_path):
    """An earlier output without pas; the user put their own grad_pas.mod there."""
    out = tmp_path / "out"
    assert run_cli("convert", HH, "-o", out, "--all-params").returncode == 0
    (out / "grad_pas.mod").write_text("the user's\n")
    before = tree(tmp_path)
    refused(run_cli("convert", HH, PAS, "-o", out, "--all-params"), "grad_pas.mod", "not written by gradgen")
    assert tree(tmp_path) == before


def test_links_inside_its_own_output_are_not_followed(tmp_path, project):
    out = tmp_path / "out"
    assert run_cli("convert", HH, "-o", out, "--all-params").returncode == 0
    for name in ("hh.mod", OWNER_FILE):
        (project / name).write_text("the user's\n")
    (out / "original" / "hh.mod").unlink()
    (out / "original").rmdir()
    (out / "original").symlink_to(project)
    before = tree(tmp_path)
    refused(run_cli("convert", HH, "-o", out, "--all-params"), "link")
    assert tree(tmp_path) == before


def test_an_ownership_record_that_names_files_elsewhere_is_not_trusted(tmp_path):
    """A crafted record cannot make a re-conversion delete files outside its directory."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "out"
    assert run_cli("convert", HH, "-o", out, "--all-params").returncode == 0
    record = json.loads((out / OWNER_FILE).read_text())
    record["files"] += ["../victim.txt", str(victim), "original/../../victim.txt"]
    (out / OWNER_FILE).write_text(json.dumps(record))
    assert run_cli("convert", PAS, "-o", out, "--all-params").returncode == 0
    assert victim.read_text() == "keep me\n"


def test_dropping_a_file_never_deletes_through_a_link(tmp_path, project):
    """A file gradgen no longer writes is removed only inside its own folders."""
    from gradgen.outputs import OutputDir

    out = tmp_path / "out"
    OutputDir.claim(out).write({"sub/data.csv": "gradgen's\n", "a.txt": "x"}, replace_all=True)
    (out / "sub" / "data.csv").unlink()
    (out / "sub").rmdir()
    (out / "sub").symlink_to(project / "sub")
    before = tree(project)
    OutputDir.claim(out).write({"a.txt": "y"}, replace_all=True)
    assert tree(project) == before and (out / "a.txt").read_text() == "y"


def test_convert_never_writes_its_input(tmp_path):
    """Converting the reference copy inside an earlier output would overwrite that copy."""
    out = tmp_path / "out"
    assert run_cli("convert", PAS, "-o", out, "--all-params").returncode == 0
    before = tree(tmp_path)
    refused(run_cli("convert", out / "original" / "pas.mod", "-o", out, "--all-params"),
            "one of the inputs")
    assert tree(tmp_path) == before


# -- translate and build


def test_translate_into_the_inputs_directory_is_refused(tmp_path):
    tr = tmp_path / "tr"
    tr.mkdir()
    (tr / "pas.mod").write_text(PAS.read_text())
    before = tree(tmp_path)
    refused(run_cli("translate", tr / "pas.mod", "-o", tr), "did not write")
    assert tree(tmp_path) == before


def test_translate_never_overwrites_an_input_or_a_users_file_named_like_a_suffix(tmp_path):
    out = tmp_path / "out"
    assert run_cli("translate", PAS, "-o", out).returncode == 0
    # the input is gradgen's own earlier translation: translating it again in place would overwrite it
    before = tree(tmp_path)
    refused(run_cli("translate", out / "pas.mod", "-o", out), "one of the inputs")
    assert tree(tmp_path) == before
    # a SUFFIX equal to a file the user keeps in gradgen's directory
    (out / "hh.mod").write_text("the user's\n")
    before = tree(tmp_path)
    refused(run_cli("translate", HH, "-o", out), "hh.mod", "not written by gradgen")
    assert tree(tmp_path) == before


def test_translate_refuses_two_inputs_with_one_suffix(tmp_path):
    twin = tmp_path / "twin.mod"
    twin.write_text(PAS.read_text())
    out = tmp_path / "out"
    refused(run_cli("translate", PAS, twin, "-o", out), "two inputs define mechanism 'pas'")
    assert not out.exists()


def test_build_replaces_only_a_catalogue(tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", PAS, "-o", out, "--all-params").returncode == 0
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    link = tmp_path / "cat-link.so"
    link.symlink_to(precious)
    before = tree(tmp_path)
    refused(run_cli("build", out, "-o", precious), "is not an Arbor catalogue")
    refused(run_cli("build", out, "-o", link), "symbolic link")
    refused(run_cli("build", out, "-o", out), "is not an Arbor catalogue")
    assert tree(tmp_path) == before
    assert run_cli("build", out, "-o", tmp_path / "cat.so").returncode == 0
    assert run_cli("build", out, "-o", tmp_path / "cat.so").returncode == 0  # its own output


# -- tune checkpoints


def tune_config(method: str, iterations: int, output: Path | str = "out", learning_rate: float = 0.05,
                g_cal: float = 0.0012) -> str:
    """The small IO problem of tests/test_tune.py."""
    return f"""
[model]
morphology = "{ROOT}/morphologies/io_like.swc"
cv_policy = "branch:1"
mechanisms = ["{ROOT}/mechanisms/io/io_soma.mod", "{ROOT}/mechanisms/io/io_dend.mod",
              "{ROOT}/mechanisms/io/io_axon.mod"]
v_init = -60.0
probe = "soma"
[model.paint]
soma = ["io_soma"]
dend = ["io_dend"]
axon = ["io_axon"]
[simulation]
t_end = 60.0
dt = 0.025
sample_dt = 1.0
[tune]
parameters = ["io_soma.g_CaL", "io_dend.g_CaH"]
[target.values]
"io_soma.g_CaL" = {g_cal}
[optimizer]
method = "{method}"
iterations = {iterations}
learning_rate = {learning_rate}
population = 4
[output]
directory = "{output}"
"""


def tune(tmp_path: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    config = tmp_path / "tune.toml"
    config.write_text(tune_config(*args, **kwargs))
    return run_cli("tune", config)


def test_a_resume_under_another_config_is_refused(tmp_path):
    assert tune(tmp_path, "adam", 1).returncode == 0
    assert tune(tmp_path, "adam", 2).returncode == 0  # more iterations: the same run, resumed
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["history"]
    assert len(rows) == 2
    before = tree(tmp_path / "out")
    refused(tune(tmp_path, "adam", 3, learning_rate=0.1), "adam.npz", "another configuration",
            "differs in: settings")
    refused(tune(tmp_path, "adam", 3, g_cal=0.0013), "differs in: target_values")
    assert tree(tmp_path / "out") == before


class Pwn:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("damage", ["truncated", "random", "pickle"])
def test_a_damaged_checkpoint_is_refused_and_never_unpickled(tmp_path, damage):
    assert tune(tmp_path, "adam", 1).returncode == 0
    checkpoint = tmp_path / "out" / "adam.npz"
    pwned = tmp_path / "pwned"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncated": data[:len(data) // 2],
                            "random": np.random.default_rng(0).bytes(len(data)),
                            "pickle": pickle.dumps(Pwn(pwned))}[damage])
    refused(tune(tmp_path, "adam", 2), "adam.npz", "cannot be read")
    assert not pwned.exists()


def test_an_old_pickled_cmaes_checkpoint_is_never_loaded(tmp_path):
    """gradgen before this version saved CMA-ES as cmaes.pkl; it is not read, ever."""
    assert tune(tmp_path, "cmaes", 1).returncode == 0
    pwned = tmp_path / "pwned"
    (tmp_path / "out" / "cmaes.pkl").write_bytes(pickle.dumps(Pwn(pwned)))
    assert tune(tmp_path, "cmaes", 2).returncode == 0
    assert not pwned.exists()


def test_cmaes_resumed_in_a_new_process_continues_exactly(tmp_path):
    """Interrupted after 1 generation and resumed in another process, the run is the
    uninterrupted one (the same test in one process is in test_tune.py)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert tune(tmp_path / "a", "cmaes", 3).returncode == 0
    assert tune(tmp_path / "b", "cmaes", 1).returncode == 0
    assert tune(tmp_path / "b", "cmaes", 3).returncode == 0
    rows = [[{k: v for k, v in r.items() if k != "seconds"}
             for r in json.loads((tmp_path / d / "out" / "results.json").read_text())["history"]]
            for d in ("a", "b")]
    assert rows[0] == rows[1] and len(rows[0]) == 3


def test_a_non_finite_state_is_never_saved(tmp_path):
    """A simulation that returns NaN stops the run; the checkpoint keeps the last finite
    iteration and a rerun resumes from it (before, NaN was saved and every rerun crashed)."""
    import dataclasses

    from gradgen.tuning.checkpoint import Checkpoint, problem_description
    from gradgen.tuning.config import load_config
    from gradgen.tuning.optim import Budget, run_adam
    from gradgen.tuning.run import setup

    config = tmp_path / "tune.toml"
    config.write_text(tune_config("adam", 3))
    problem = setup(load_config(config), tmp_path).problem

    class NaNAfter:
        """The real problem, except that evaluations after the first ``n`` return NaN."""

        def __init__(self, n: int):
            self.n, self.calls = n, 0

        def __getattr__(self, name):
            return getattr(problem, name)

        def evaluate(self, z):
            self.calls += 1
            evaluation = problem.evaluate(z)
            return evaluation if self.calls <= self.n else dataclasses.replace(evaluation, loss=float("nan"))

    checkpoint = Checkpoint(tmp_path / "adam.npz", problem_description(problem, "adam", {"learning_rate": 0.05}))
    with pytest.raises(GradgenError, match="iteration 1: .* non-finite loss"):
        run_adam(NaNAfter(1), Budget(3), 0.05, checkpoint, progress=False)
    header, arrays = checkpoint.load()
    assert len(header["history"]["rows"]) == 1
    assert all(np.all(np.isfinite(a)) for a in arrays.values())
    assert len(run_adam(problem, Budget(2), 0.05, checkpoint, progress=False).rows) == 2
    with pytest.raises(GradgenError, match="non-finite"):
        checkpoint.save({}, {"z": np.array([1.0, np.nan])})
    assert len(checkpoint.load()[0]["history"]["rows"]) == 2  # unchanged


# -- the build cache


def _loads(catalogue: Path) -> subprocess.CompletedProcess:
    """Load a catalogue in a separate process (a broken one may kill it with SIGBUS)."""
    code = f"import arbor; print(len(list(arbor.load_catalogue({str(catalogue)!r}).keys())))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_build_cache_checksums_stale_temporaries_and_concurrent_builds(tmp_path):
    """Two concurrent first builds of one content into an empty cache both succeed; a
    truncated, random or checksum-less truncated cached .so is rebuilt instead of loaded;
    temporaries of killed builds are removed once stale, fresh ones (a build under way) kept."""
    out = tmp_path / "out"
    assert run_cli("convert", PAS, "-o", out, "--all-params").returncode == 0
    env = {"GRADGEN_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "gradgen.cli", "build", str(out), "-o"]
    procs = [subprocess.Popen([*cmd, str(tmp_path / f"{k}.so")], env={**os.environ, **env},
                              stderr=subprocess.PIPE, text=True) for k in "ab"]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    cached, = (tmp_path / "cache" / "catalogues").glob("*/gradgen.so")
    assert sorted(p.name for p in cached.parent.iterdir()) == ["gradgen.so", "gradgen.so.sha256"]
    for k in "ab":
        assert _loads(tmp_path / f"{k}.so").stdout.strip() == "2"  # grad_pas and the hub
    good = cached.read_bytes()
    stale, fresh = cached.parent / "tmpkilled", cached.parent / "tmpbuilding"
    for damage in ("truncated", "random", "legacy"):
        stale.mkdir()
        fresh.mkdir(exist_ok=True)
        os.utime(stale, (0, 0))
        cached.write_bytes(good[:len(good) // 2] if damage != "random" else os.urandom(len(good)))
        if damage == "legacy":
            cached.with_name("gradgen.so.sha256").unlink()  # from before the checksums
        proc = run_cli("build", out, "-o", tmp_path / "c.so", env=env)
        assert proc.returncode == 0, proc.stderr
        assert _loads(tmp_path / "c.so").stdout.strip() == "2"
        assert cached.with_name("gradgen.so.sha256").read_text().strip() == \
            hashlib.sha256(cached.read_bytes()).hexdigest()
        assert not stale.exists() and fresh.exists()
