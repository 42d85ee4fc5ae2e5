"""Compile the C++ shim once per (shim source, Arbor headers, compiler) and cache it.

The shim must match the installed Arbor's ABI headers, so it is built on first use
against ``arbor/include`` from the wheel and cached in gradgen's build cache (``pycat/<hash>``
under :func:`gradgen.cached_artefact.cache_root`, or ``$PYCAT_CACHE``), with gradgen's
compiler lookup and a checksum checked before use (see :mod:`gradgen.cached_artefact`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from gradgen.cached_artefact import cache_root as gradgen_cache_root
from gradgen.cached_artefact import find_compiler, install, intact, remove_stale
from gradgen.errors import GradgenError

from .errors import PycatError

SHIM_SOURCE = Path(__file__).with_name("shim.cpp")
CXXFLAGS = ["-std=c++20", "-O2", "-fPIC", "-shared", "-fvisibility=hidden"]


def arbor_include_dir() -> Path:
    """The C++ headers shipped inside the installed ``arbor`` wheel."""
    import arbor

    inc = Path(arbor.__file__).parent / "include"
    if not (inc / "arbor" / "mechanism_abi.h").is_file():
        raise PycatError(
            f"the installed arbor has no C++ headers at {inc}",
            hint="install the official arbor wheel (pip install 'arbor>=0.12,<0.13')",
        )
    return inc


def cache_root() -> Path:
    """Where the shim is cached: $PYCAT_CACHE, else the pycat folder of gradgen's cache."""
    if "PYCAT_CACHE" in os.environ:
        return Path(os.environ["PYCAT_CACHE"])
    return gradgen_cache_root() / "pycat"


def _build_key(compiler: str, include: Path) -> str:
    h = hashlib.sha256()
    h.update(SHIM_SOURCE.read_bytes())
    for header in ("mechanism_abi.h", "arb_types.inc", "version.hpp"):
        h.update((include / "arbor" / header).read_bytes())
    h.update(compiler.encode())
    h.update(" ".join(CXXFLAGS).encode())
    return h.hexdigest()[:16]


def shim_path() -> Path:
    """Path of the compiled shim, building it if it is not cached yet."""
    include = arbor_include_dir()
    try:
        compiler = find_compiler()
    except GradgenError as error:  # pycat's errors are PycatError
        raise PycatError(error.message, hint=error.hint) from None
    out_dir = cache_root() / _build_key(compiler, include)
    lib = out_dir / "libpycat.so"
    if intact(lib):
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    # build into a temporary name and rename: concurrent first uses never see half a file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [compiler, *CXXFLAGS, f"-I{include}", str(SHIM_SOURCE), "-o", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise PycatError(
            "compiling the pycat shim failed:\n" + " ".join(cmd) + "\n" + proc.stderr[-4000:],
            hint="a C++20 compiler is needed (g++ >= 10 or clang++ >= 12)",
        )
    install(Path(tmp), lib)
    return lib
