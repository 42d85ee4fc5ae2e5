"""Fuzz: mutated .mod files, tuning configs and SWC files end in success or one clean error.

Every `.mod` of mechanisms/ (and mechanisms/io/) is mutated a dozen ways with a fixed seed
and converted in-process through the CLI's ``main`` (no compiling): the exit status is 0 or
2; on 2 stderr is one line, and no output (nor a staging directory) is left behind. Any
other exception fails the test with its traceback. The same for the tuning config
(``examples/io.toml``, loaded as ``gradgen tune`` loads it, without tuning) and the SWC
morphology; a few mutations also go through the real CLI in a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradgen.cli import main
from gradgen.errors import GradgenError

ROOT = Path(__file__).resolve().parents[1]
MOD_FILES = sorted((ROOT / "mechanisms").rglob("*.mod"))
SEED = 15  # the number; any fixed value makes the mutations reproducible

_KEYWORDS = ["NEURON", "SUFFIX", "PARAMETER", "STATE", "ASSIGNED", "BREAKPOINT", "SOLVE",
             "DERIVATIVE", "INITIAL", "USEION", "RANGE", "NONSPECIFIC_CURRENT", "METHOD",
             "KINETIC", "FUNCTION", "PROCEDURE", "NET_RECEIVE", "UNITS", "LOCAL"]
_NON_FINITE = re.compile(r"\b(zoo|nan|NaN|inf|Infinity|oo)\b")
_NUMBER = re.compile(r"(?<![\w.])\d+\.?\d*(e[+-]?\d+)?")


def _drop_brace(text: str, rng: random.Random) -> str:
    spots = [i for i, c in enumerate(text) if c == "}"]
    i = rng.choice(spots)
    return text[:i] + text[i + 1:]


def _add_brace(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[:i] + rng.choice("{}") + text[i:]


def _misspell(text: str, rng: random.Random) -> str:
    word = rng.choice([k for k in _KEYWORDS if k in text])
    i = rng.randrange(1, len(word))
    return text.replace(word, word[:i] + word[i + 1:], 1)


def _truncate(text: str, rng: random.Random) -> str:
    return text[:rng.randrange(1, len(text))]


def _binary(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[:i] + "".join(chr(rng.randrange(256)) for _ in range(8)) + text[i:]


def _huge_number(text: str, rng: random.Random) -> str:
    match = rng.choice(list(_NUMBER.finditer(text)))
    return text[:match.start()] + rng.choice(["1e400", "1e-400", "9" * 400]) + text[match.end():]


def _deep_nesting(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if re.match(r"\s*\w+'?\s*=\s*\S", line)]
    i = rng.choice(spots)
    name, _, expr = lines[i].partition("=")
    depth = rng.choice([150, 600])
    lines[i] = f"{name}= " + rng.choice(["-(", "exp(", "(", "sqrt("]) * depth + expr + ")" * depth
    return "\n".join(lines)


def _divide_by_zero(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if re.match(r"\s*\w+'?\s*=\s*\S", line)]
    i = rng.choice(spots)
    lines[i] = lines[i].split(":")[0].rstrip() + "/0"
    return "\n".join(lines)


def _delete_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    del lines[rng.randrange(len(lines))]
    return "\n".join(lines)


def _duplicate_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "\n".join(lines)


def _flip_characters(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(3):
        chars[rng.randrange(len(chars))] = rng.choice("(){}=+-*/^<>'\",;:.0123456789 \tabcXYZ_@#!")
    return "".join(chars)


def _generated_name(text: str, rng: random.Random) -> str:
    match = re.search(r"PARAMETER\s*\{\s*(\w+)", text)
    if not match:
        return text + "\nPARAMETER { gg_w0 = 1 }\n"
    return re.sub(rf"\b{match.group(1)}\b", rng.choice(["gg_w0", "gsgd", "gk0", "v"]), text)


MOD_MUTATIONS = [_drop_brace, _add_brace, _misspell, _truncate, _binary, _huge_number,
                 _deep_nesting, _divide_by_zero, _delete_line, _duplicate_line,
                 _flip_characters, _generated_name]


def run_main(args: list[str]) -> tuple[int, str]:
    """The CLI in this process: its exit status and stderr (an exception fails the test)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in args])
    return status, err.getvalue()


def assert_clean(status: int, stderr: str, output: Path, case: str) -> None:
    assert status in (0, 2), case
    assert "Traceback" not in stderr, case
    if status == 0:  # converted: then nothing silently wrong may be in what it wrote
        for path in output.rglob("*"):
            if path.is_file() and path.parent == output:
                assert not _NON_FINITE.search(path.read_text()), f"{case}: {path.name} has a non-finite value"
    if status == 2:
        assert len(stderr.splitlines()) == 1 and stderr.startswith("gradgen: error: "), (case, stderr)
        assert not output.exists(), f"{case}: output left behind"
        assert not [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.")], \
            f"{case}: staging directory left behind"


def _first_parameter(text: str) -> str:
    suffix = re.search(r"(SUFFIX|POINT_PROCESS)\s+(\w+)", text).group(2)
    name = re.search(r"PARAMETER\s*\{\s*(\w+)", text).group(1)
    return f"{suffix}.{name}"


@pytest.mark.parametrize("mod", MOD_FILES, ids=lambda p: p.name)
def test_fuzz_mod(tmp_path, mod):
    text = mod.read_text()
    param = _first_parameter(text)  # one θ keeps each conversion short
    rng = random.Random(f"{SEED}:{mod.name}")
    outcomes = []
    for mutate in MOD_MUTATIONS:
        case = f"{mod.name}/{mutate.__name__}"
        mutated = tmp_path / mutate.__name__ / mod.name
        mutated.parent.mkdir()
        mutated.write_text(mutate(text, rng), errors="surrogateescape")
        output = mutated.parent / "out"
        status, stderr = run_main(["convert", mutated, "-o", output, "--params", param])
        assert_clean(status, stderr, output, case)
        outcomes.append(status)
    assert 2 in outcomes  # the mutations do break files


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gradgen.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("mutate", [_truncate, _binary, _deep_nesting], ids=lambda f: f.__name__)
def test_fuzz_mod_cli(tmp_path, mutate):
    mod = tmp_path / "hh.mod"
    mod.write_text(mutate((ROOT / "mechanisms" / "hh.mod").read_text(), random.Random(SEED)),
                   errors="surrogateescape")
    result = _cli(["convert", mod, "-o", tmp_path / "out", "--params", "hh.gnabar"], tmp_path)
    assert_clean(result.returncode, result.stderr, tmp_path / "out", mutate.__name__)


# ---------------------------------------------------------------- TOML configs

def _config_text(tmp_path: Path) -> str:
    text = (ROOT / "examples" / "io.toml").read_text()
    return text.replace('"../', f'"{ROOT}/').replace('directory = "../io-tuning"',
                                                     f'directory = "{tmp_path / "tuned"}"')


def _toml_value(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if re.match(r"\s*[\w\"]", line) and "=" in line]
    i = rng.choice(spots)
    key = lines[i].split("=")[0]
    lines[i] = key + "= " + rng.choice(["nan", "inf", "-1", '"x"', "[1, 2]", "{}", "true", "2.5",
                                        "[[5, \"x\"]]", '["a", "b"]', "1e400"])
    return "\n".join(lines)


def _toml_key(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if re.match(r"\s*[a-z_]+\s*=", line)]
    i = rng.choice(spots)
    key = lines[i].split("=")[0].strip()
    return "\n".join(lines).replace(f"\n{key} =", f"\n{key[:-1]}x =", 1)


TOML_MUTATIONS = [_truncate, _binary, _drop_brace, _misspell, _delete_line, _duplicate_line,
                  _flip_characters, _huge_number, _toml_value, _toml_value, _toml_key, _toml_key]


def test_fuzz_toml(tmp_path):
    from gradgen.tuning.config import load_config

    base = _config_text(tmp_path)
    rng = random.Random(f"{SEED}:io.toml")
    refusals = 0
    for n, mutate in enumerate(TOML_MUTATIONS):
        if mutate is _drop_brace:
            mutate = _drop_bracket
        if mutate is _misspell:
            mutate = _misspell_section
        path = tmp_path / f"case{n}.toml"
        path.write_text(mutate(base, rng), errors="surrogateescape")
        try:
            load_config(path)
        except GradgenError as error:
            refusals += 1
            assert "\n" not in str(error), (mutate.__name__, str(error))
    assert not (tmp_path / "tuned").exists()
    assert refusals >= len(TOML_MUTATIONS) // 2


def _drop_bracket(text: str, rng: random.Random) -> str:
    spots = [i for i, c in enumerate(text) if c in "]"]
    i = rng.choice(spots)
    return text[:i] + text[i + 1:]


def _misspell_section(text: str, rng: random.Random) -> str:
    section = rng.choice(["[model]", "[simulation]", "[tune]", "[optimizer]", "[target.values]"])
    return text.replace(section, section[:-2] + "]", 1)


@pytest.mark.parametrize("mutate", [_truncate, _toml_key], ids=lambda f: f.__name__)
def test_fuzz_toml_cli(tmp_path, mutate):
    config = tmp_path / "tune.toml"
    text = _config_text(tmp_path)
    config.write_text(mutate(text, random.Random(SEED)) if mutate is _toml_key else
                      text[:text.index("[target.values]") + 5])
    result = _cli(["tune", config], tmp_path)
    assert_clean(result.returncode, result.stderr, tmp_path / "tuned", mutate.__name__)
    assert result.returncode == 2


# ---------------------------------------------------------------- SWC

def _swc_number(text: str, rng: random.Random) -> str:
    match = rng.choice(list(_NUMBER.finditer(text)))
    return text[:match.start()] + rng.choice(["nan", "inf", "-3", "0", "1e400", "x", "99999"]) + \
        text[match.end():]


SWC_MUTATIONS = [_truncate, _binary, _delete_line, _duplicate_line, _flip_characters,
                 _swc_number, _swc_number, _swc_number, _huge_number, _add_brace,
                 lambda text, rng: "", lambda text, rng: text.replace(" ", "\t")]


def test_fuzz_swc(tmp_path):
    import arbor

    from gradgen.targets.arbor.morphology import load_swc

    text = (ROOT / "morphologies" / "io_like.swc").read_text()
    rng = random.Random(f"{SEED}:io_like.swc")
    for n, mutate in enumerate(SWC_MUTATIONS):
        path = tmp_path / f"case{n}.swc"
        path.write_text(mutate(text, rng), errors="surrogateescape")
        try:
            cell = load_swc(path)
        except GradgenError as error:
            # gradgen's own row checks give file:line:col; what only Arbor finds names the file
            assert "\n" not in str(error) and str(error).startswith(str(path)), str(error)
            continue
        assert isinstance(cell.morphology, arbor.morphology) and cell.morphology.num_branches > 0
