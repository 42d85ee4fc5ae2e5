"""Build a converted directory into one NEURON mechanism library with ``nrnivmodl``.

The library holds the hub, every gradient mechanism and every original (renamed with
:func:`gradgen.protocol.original_name`, the reference for finite differences), and for the
shadow carrier the shadow cells' mechanism. NEURON runs the state updates of a library's
mechanisms in reverse order of registration, and ``nrnivmodl`` registers files in the order
it is given them: the ion carrier's hub goes first so that it runs after every contributor,
the shadow hub last so that it runs before them. Libraries are cached by the hash of their sources and of the
NEURON version, outside the repository (``nrnivmodl`` writes into its working directory,
so it runs in a temporary one).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gradgen.cached_artefact import cache_root, install, intact, remove_stale
from gradgen.errors import GradgenError
from gradgen.manifest import Manifest, MechanismEntry
from gradgen.nmodl.parser import parse_text
from gradgen.protocol import HUB_NAME, SHADOW_MECHANISM, original_name
from gradgen.targets.neuron.emit import emit_shadow_mechanism, original_source

LIBRARY = "libnrnmech.so"


def neuron_version() -> str:
    try:
        return importlib.metadata.version("neuron")
    except importlib.metadata.PackageNotFoundError:
        raise GradgenError("NEURON is not installed", hint="pip install 'gradgen[neuron]'") from None


def cache_dir() -> Path:
    """Where built libraries live: the shared build cache (:mod:`gradgen.cached_artefact`)."""
    return cache_root() / "neuron"


def _nrnivmodl() -> str:
    beside = Path(sys.executable).parent / "nrnivmodl"
    found = str(beside) if beside.exists() else shutil.which("nrnivmodl")
    if not found:
        raise GradgenError("'nrnivmodl' not found", hint="pip install 'gradgen[neuron]'")
    return found


def source_hash(sources: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256(f"{neuron_version()}\0".encode())
    for file, text in sources:
        digest.update(f"{file}\0{text}\0".encode())
    return digest.hexdigest()[:20]


def build_library(sources: list[tuple[str, str]]) -> Path:
    """Compile ``[(file name, NMODL text)]``, registered in this order; returns the ``.so``.

    The path is unique per content: NEURON cannot unload a library, so a changed one is a
    new file.
    """
    target = cache_dir() / source_hash(sources) / LIBRARY
    if intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        for file, text in sources:
            (work / file).write_text(text)
        proc = subprocess.run([_nrnivmodl(), *[file for file, _ in sources]], cwd=work,
                              capture_output=True, text=True)
        built = work / "x86_64" / LIBRARY
        if proc.returncode != 0 or not built.exists():
            text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
            errors = [line for line in text.splitlines() if "rror" in line] or text.splitlines()[-20:]
            raise GradgenError("nrnivmodl failed: " + " | ".join(errors[:8]))
        install(built, target)
    return target


def _is_pool(directory: Path, entry: MechanismEntry, manifest: Manifest) -> bool:
    """Whether ``entry`` reads a coupled ion current (a Ca pool). NEURON runs a mechanism
    that writes a concentration before the others (the originals' pool does), and the
    gradient mechanisms, which all write their accumulators, in reverse order of
    registration: registered last, the pool's gradient version runs first too, as
    :func:`gradgen.sensitivity.derive.derive_contributor` (``pool_first``) assumes."""
    if not manifest.coupling.currents:
        return False
    mech = parse_text((directory / entry.source_copy).read_text(), entry.source)
    return any(v in manifest.coupling.currents for i in mech.ions for v in i.read)


def directory_sources(directory: Path | str) -> list[tuple[str, str]]:
    """The files of a converted directory in registration order: gradients and originals,
    the hub first (ion carrier) or last after the shadow mechanism (shadow carrier)."""
    directory = Path(directory)
    manifest = Manifest.load(directory)
    hub = [(f"{HUB_NAME}.mod", (directory / f"{HUB_NAME}.mod").read_text())]
    # a Ca pool last: it runs its state update right after the shadow hub, before the others
    mechanisms = sorted(manifest.mechanisms, key=lambda m: _is_pool(directory, m, manifest))
    # a bystander (it cannot move V) runs as its original, which is built below
    sources = [(f"{m.gradient}.mod", (directory / f"{m.gradient}.mod").read_text())
               for m in mechanisms if not m.bystander]
    sources += [(f"{original_name(m.original)}.mod",
                 original_source((directory / m.source_copy).read_text(), m.original))
                for m in mechanisms]
    if manifest.scheme == "shadow":
        return sources + [(f"{SHADOW_MECHANISM}.mod", emit_shadow_mechanism())] + hub
    return hub + sources


def build_directory(directory: Path | str) -> Path:
    """Build a directory written by ``gradgen convert --target neuron``."""
    return build_library(directory_sources(directory))
