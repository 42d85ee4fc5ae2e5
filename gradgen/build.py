"""Build NMODL files into an Arbor catalogue with a scalar (non-SIMD) modcc build.

SIMD builds write diffusive concentrations wrongly in Arbor 0.12 (see the project notes),
so gradient mechanisms are always built scalar. Catalogues are cached by the hash of their
sources and of the Arbor version, outside the repository.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import arbor

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
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "mod").mkdir()
        (work / "gen").mkdir()
        for file, text in sources.items():
            (work / "mod" / file).write_text(text)
        _run([_tool("modcc"), "-t", "cpu", "-N", "arb", "-c", name, "-o", str(work / "gen"),
              *sorted(str(p) for p in (work / "mod").glob("*.mod"))], "modcc", work)
        sofile = work / f"{name}.so"
        _run([_compiler(), "-std=c++20", "-O2", "-fPIC", "-shared", "-DSTANDALONE=1",
              f"-I{ARBOR_DIR / 'include'}", f"-I{work / 'gen'}",
              *sorted(str(p) for p in (work / "gen").glob("*.cpp")), "-o", str(sofile)], "c++", work)
        os.replace(sofile, target)
    return target


def build_directory(directory: Path | str, name: str = "gradgen") -> Path:
    """Build every ``.mod`` file of a directory (see :func:`build_catalogue`)."""
    files = sorted(Path(directory).glob("*.mod"))
    if not files:
        raise GradgenError(f"no .mod files in {directory}")
    return build_catalogue({f.name: f.read_text() for f in files}, name)


def _run(cmd: list[str], what: str, work: Path) -> None:
    """Run a build tool; its failure as one line: the first error, without the temporary path."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        import re

        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr + proc.stdout).replace(f"{work}/", "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines) if "error" in line.lower()), 0)
        first = " ".join(lines[at:at + 2])  # modcc: "error: file:(line, col)" then the reason
        raise GradgenError(f"{what} failed: {first[:300]}",
                           hint="gradgen generated code its build tools reject: please report it "
                                "with the .mod files")
