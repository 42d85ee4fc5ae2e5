"""Compiled artefacts in a cache: where it lives, which compiler builds into it, and a
checksum per artefact that is trusted only when it matches.

gradgen's catalogues and pycat's shim share this cache root and compiler lookup.

A truncated or overwritten shared object in the cache would otherwise be handed to
``dlopen`` and kill the process (a truncated ``.so`` raises SIGBUS when mapped). Each
artefact has a ``<file>.sha256`` beside it; a mismatch means rebuild. Artefacts from before
the checksums are adopted only when their ELF header says the file is complete. Builds
write into temporary files or folders beside the artefact and rename, so concurrent builds
of the same content are safe; temporaries that a killed build left behind are removed once
they are older than any build takes.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import struct
import time
from pathlib import Path

from gradgen.errors import GradgenError

#: a build takes minutes; a temporary older than this belongs to a process that died
STALE_SECONDS = 3600.0


def cache_root() -> Path:
    """The cache of compiled artefacts: $GRADGEN_CACHE, else $XDG_CACHE_HOME/gradgen, else
    ~/.cache/gradgen (never inside a repository)."""
    if os.environ.get("GRADGEN_CACHE"):
        return Path(os.environ["GRADGEN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradgen"


def find_compiler() -> str:
    """``$CXX`` if set, else the first of c++, g++, clang++ on PATH."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise GradgenError("no C++ compiler found (tried " + ", ".join(candidates) + ")",
                       hint="install g++ (e.g. apt-get install g++) or set CXX to a C++20 compiler")


def _checksum_file(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _elf_complete(path: Path) -> bool:
    """Whether a 64-bit little-endian ELF file is at least as long as its section table ends."""
    with path.open("rb") as f:
        head = f.read(64)
    if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
        return False
    shoff, = struct.unpack_from("<Q", head, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
    return path.stat().st_size >= shoff + shentsize * shnum > 0


def intact(artefact: Path) -> bool:
    """Whether the cached ``artefact`` can be used (see the module docstring)."""
    if artefact.is_symlink() or not artefact.is_file():
        return False
    checksum = _checksum_file(artefact)
    try:
        if checksum.is_file():
            return checksum.read_text().strip() == _sha256(artefact)
        if not _elf_complete(artefact):
            return False
    except OSError:
        return False
    try:  # from before the checksums: adopted, with its checksum from now on
        record(artefact)
    except OSError:
        pass  # a read-only cache: still usable
    return True


def record(artefact: Path) -> None:
    """Write the checksum of ``artefact`` beside it (atomically)."""
    checksum = _checksum_file(artefact)
    tmp = checksum.with_name(f"{checksum.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(_sha256(artefact) + "\n")
    os.replace(tmp, checksum)


def install(built: Path, artefact: Path) -> None:
    """Move a finished build (on the same file system) into the cache with its checksum.

    The checksum is written first: a reader that sees it beside an older file finds a
    mismatch and builds again instead of trusting that file.
    """
    record_of = _checksum_file(artefact)
    tmp = record_of.with_name(f"{record_of.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(_sha256(built) + "\n")
    os.replace(tmp, record_of)
    os.replace(built, artefact)


def remove_stale(folder: Path, prefix: str = "tmp") -> None:
    """Remove temporaries (``prefix*``) in ``folder`` older than :data:`STALE_SECONDS`."""
    if not folder.is_dir():
        return
    now = time.time()
    for entry in folder.iterdir():
        try:
            if not entry.name.startswith(prefix) or now - entry.lstat().st_mtime < STALE_SECONDS:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:
            pass
