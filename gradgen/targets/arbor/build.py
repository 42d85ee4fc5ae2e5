"""Build NMODL files into an Arbor catalogue with a scalar (non-SIMD) modcc build.

SIMD builds write diffusive concentrations wrongly in Arbor 0.12 (see the project notes),
so gradient mechanisms are always built scalar. Catalogues are cached by the hash of their
sources and of the Arbor version, outside the repository, each with a checksum that is
checked before use (see :mod:`gradgen.cached_artefact`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import arbor

from gradgen.cached_artefact import install, intact, remove_stale
from gradgen.errors import GradgenError

ARBOR_DIR = Path(arbor.__file__).resolve().parent


def cache_dir() -> Path:
    """Where built catalogues live: $GRADGEN_CACHE, else ~/.cache/gradgen."""
    root = os.environ.get("GRADGEN_CACHE") or Path.home() / ".cache" / "gradgen"
    return Path(root) / "catalogues"


def _tool(name: str) -> str:
    bundled = ARBOR_DIR / "bin" / name
    if bundled.exists():
        return str(bundled)
    found = shutil.which(name)
    if not found:
        raise GradgenError(f"'{name}' not found", hint="install the arbor wheel (pip install arbor==0.12.2)")
    return found


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise GradgenError("no C++ compiler found", hint="install one, e.g. apt-get install g++")


def source_hash(sources: dict[str, str], name: str) -> str:
    digest = hashlib.sha256(f"{arbor.__version__}\0{name}\0".encode())
    for file in sorted(sources):
        digest.update(f"{file}\0{sources[file]}\0".encode())
    return digest.hexdigest()[:20]


def build_catalogue(sources: dict[str, str], name: str = "gradgen") -> Path:
    """Compile ``{file name: NMODL text}`` into a catalogue and return the ``.so`` path.

    The path is unique per content (dlopen caches by path, so a changed catalogue must be
    loaded from a new path).
    """
    target = cache_dir() / source_hash(sources, name) / f"{name}.so"
    if intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in cache_dir().iterdir():
        remove_stale(folder)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "mod").mkdir()
        (work / "gen").mkdir()
        for file, text in sources.items():
            (work / "mod" / file).write_text(text)
        _run([_tool("modcc"), "-t", "cpu", "-N", "arb", "-c", name, "-o", str(work / "gen"),
              *sorted(str(p) for p in (work / "mod").glob("*.mod"))], "modcc")
        sofile = work / f"{name}.so"
        _run([_compiler(), "-std=c++20", "-O2", "-fPIC", "-shared", "-DSTANDALONE=1",
              f"-I{ARBOR_DIR / 'include'}", f"-I{work / 'gen'}",
              *sorted(str(p) for p in (work / "gen").glob("*.cpp")), "-o", str(sofile)], "c++")
        install(sofile, target)
    return target


def is_catalogue(path: Path) -> bool:
    """Whether ``path`` is an Arbor catalogue (a shared object exporting get_catalogue)."""
    data = path.read_bytes()
    return data.startswith(b"\x7fELF") and b"get_catalogue" in data


def build_directory(directory: Path | str, name: str = "gradgen") -> Path:
    """Build every ``.mod`` file of a directory (see :func:`build_catalogue`)."""
    files = sorted(Path(directory).glob("*.mod"))
    if not files:
        raise GradgenError(f"no .mod files in {directory}")
    return build_catalogue({f.name: f.read_text() for f in files}, name)


def modcc_accepts(text: str) -> bool:
    """Whether Arbor's modcc compiles ``text`` (run alone, no C++ compiler: fast)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.mod").write_text(text)
        proc = subprocess.run([_tool("modcc"), "-t", "cpu", "-N", "arb", "-o", tmp,
                               str(Path(tmp) / "m.mod")], capture_output=True, text=True)
    return proc.returncode == 0


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = (proc.stderr + proc.stdout).replace("\x1b[", "\\e[")
        import re

        text = re.sub(r"\\e\[[0-9;]*m", "", text).strip()
        raise GradgenError(f"{what} failed: {text[-2000:]}")
