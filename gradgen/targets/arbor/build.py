"""Build NMODL files into an Arbor catalogue.

Density mechanisms are built with modcc's SIMD printer (hh.mod runs 2.3× faster than built
scalar on the HH axon; the IO mechanisms gain nothing), with its diffusive-concentration write
repaired (:mod:`gradgen.targets.arbor.simd_patch`);
point and junction processes are built scalar, since their SIMD writes count padded lanes;
a junction's gradient version gets the line that reads the peer's carriers
(:mod:`gradgen.targets.arbor.process_patch`).
``vectorize=False`` builds everything scalar. Compiler flags follow the arbor wheel's build
(``-march`` of ``arbor.config()``) plus ``-fno-math-errno``. Catalogues are cached by the
hash of their sources, the Arbor version and the build flags, outside the repository.
 Each cached catalogue carries a checksum that is checked before use (see
:mod:`gradgen.cached_artefact`).
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import arbor

from gradgen.cached_artefact import (
    cache_root,
    find_compiler,
    install,
    intact,
    remove_stale,
)
from gradgen.errors import GradgenError
from gradgen.targets.arbor.exact_channel import CHANNEL_PATCH_VERSION, patch_exact_channel, patch_point_channel
from gradgen.targets.arbor.exact_patch import (
    EXACT_PATCH_VERSION,
    patch_exact_source,
    skip_absent_members,
)
from gradgen.targets.arbor.exact_simd import (
    blend_masked_stores,
    chunk_major_sigma,
    store_member_fields_unmasked,
    unmask_member_temporaries,
)
from gradgen.targets.arbor.process_patch import (
    PROCESS_PATCH_VERSION,
    needs_process_patch,
    patch_junction_source,
    patch_voltage_source,
)
from gradgen.targets.arbor.simd_patch import check_simd_writes, patch_simd_source

ARBOR_DIR = Path(arbor.__file__).resolve().parent


def cache_dir() -> Path:
    """Where built catalogues live (in the shared cache, :func:`gradgen.cached_artefact.cache_root`)."""
    return cache_root() / "catalogues"


def tool(name: str) -> str:
    bundled = ARBOR_DIR / "bin" / name
    if bundled.exists():
        return str(bundled)
    found = shutil.which(name)
    if not found:
        raise GradgenError(f"'{name}' not found", hint="install the arbor wheel (pip install arbor==0.12.2)")
    return found


#: Bumped whenever the generated-code repair changes, so cached catalogues are rebuilt.
SIMD_PATCH_VERSION = 1

#: Bumped whenever the exact mechanism's SIMD rewrites change, so cached catalogues are rebuilt.
EXACT_SIMD_VERSION = 3


def compiler_flags() -> list[str]:
    """Flags for the generated C++: the wheel's target architecture, no errno from libm."""
    arch = str(arbor.config().get("arch") or "")
    march = [f"-march={arch}"] if arch and arch != "none" else []
    return ["-std=c++20", "-O2", *march, "-fno-math-errno", "-fPIC", "-shared", "-DSTANDALONE=1"]


def build_key(vectorize: bool) -> str:
    """Everything besides the sources that changes the built catalogue."""
    simd = f"simd-patch{SIMD_PATCH_VERSION}" if vectorize else "scalar"
    return f"{simd} {' '.join(compiler_flags())}"


def source_hash(sources: dict[str, str], name: str, key: str = "") -> str:
    digest = hashlib.sha256(f"{arbor.__version__}\0{name}\0{key}\0".encode())
    for file in sorted(sources):
        digest.update(f"{file}\0{sources[file]}\0".encode())
    return digest.hexdigest()[:20]


def build_catalogue(sources: dict[str, str], name: str = "gradgen", vectorize: bool = True,
                    exact: dict[str, tuple[int, tuple[str, ...]]] | None = None,
                    points: dict[str, int] | None = None, members: tuple[str, ...] = ()) -> Path:
    """Compile ``{file name: NMODL text}`` into a catalogue and return the ``.so`` path.

    ``exact`` names the exact-carrier mechanisms with their number of parameters and the
    covered-fraction guards of their members: their C++ gets the tree solve, and SIMD code
    skips chunks without a guarded member (:mod:`gradgen.targets.arbor.exact_patch`) and is made
    cheaper (:mod:`gradgen.targets.arbor.exact_simd`; ``members``: the mechanisms fused in it).
    ``points`` names the exact-carrier point processes with their number of parameters: they
    and the exact mechanisms get the channel between them
    (:mod:`gradgen.targets.arbor.exact_channel`). The path is unique per
    content and build flags (dlopen caches by path, so a changed catalogue must be loaded from
    a new path).
    """
    exact, points = exact or {}, points or {}
    key = build_key(vectorize) + (f" exact-patch{EXACT_PATCH_VERSION} exact-simd{EXACT_SIMD_VERSION}" if exact else "")
    key += f" channel-patch{CHANNEL_PATCH_VERSION}" if points else ""
    if any(map(needs_process_patch, sources.values())):
        key += f" process-patch{PROCESS_PATCH_VERSION}"
    target = cache_dir() / source_hash(sources, name, key) / f"{name}.so"
    if intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in cache_dir().iterdir():
        remove_stale(folder)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "mod").mkdir()
        for file, text in sources.items():
            (work / "mod" / file).write_text(text)
        generated = generate(work, name, vectorize)
        for mech, (n_params, guards) in exact.items():
            source = generated / f"{mech}_cpu.cpp"
            text = patch_exact_source(source.read_text(), n_params, source.name)
            if vectorize:
                text = cheaper_exact_simd(text, list(guards), members, source.name)
            if points:
                text = patch_exact_channel(text, n_params, source.name)
            source.write_text(text)
        for mech, n_params in points.items():
            source = generated / f"{mech}_cpu.cpp"
            source.write_text(patch_point_channel(source.read_text(), n_params, source.name))
        sofile = work / f"{name}.so"
        _run([find_compiler(), *compiler_flags(), f"-I{ARBOR_DIR / 'include'}", f"-I{generated}",
              *sorted(str(p) for p in generated.glob("*.cpp")), "-o", str(sofile)], "c++", work)
        install(sofile, target)
    return target


def cheaper_exact_simd(text: str, guards: list[str], members: tuple[str, ...], where: str) -> str:
    """The exact mechanism's SIMD code with its guarded members skipped where absent and its
    masks and layout made cheap (:mod:`gradgen.targets.arbor.exact_simd`)."""
    if guards:
        text = skip_absent_members(text, guards, where)
        text = unmask_member_temporaries(text, guards, list(members), where)
        text = store_member_fields_unmasked(text, guards, list(members), where)
        text = blend_masked_stores(text)
    return chunk_major_sigma(text, list(members), where)


def is_catalogue(path: Path) -> bool:
    """Whether ``path`` is an Arbor catalogue (a shared object exporting get_catalogue)."""
    data = path.read_bytes()
    return data.startswith(b"\x7fELF") and b"get_catalogue" in data


def generate(work: Path, name: str, vectorize: bool) -> Path:
    """Run modcc on ``work/mod/*.mod``; with ``vectorize`` every density mechanism's C++ is the
    repaired SIMD version. Returns the directory of the C++ files."""
    mods = sorted(str(p) for p in (work / "mod").glob("*.mod"))
    gen = work / "gen"
    gen.mkdir()
    _run([tool("modcc"), "-t", "cpu", "-N", "arb", "-c", name, "-o", str(gen), *mods], "modcc", work)
    for header in gen.glob("*.hpp"):  # junction and voltage processes (built scalar only)
        source = gen / f"{header.stem}_cpu.cpp"
        if "result.kind=arb_mechanism_kind_gap_junction;" in header.read_text():
            source.write_text(patch_junction_source(source.read_text(), source.name))
        elif "result.kind=arb_mechanism_kind_voltage;" in header.read_text() and \
                "diffusive_concentration" in source.read_text():
            source.write_text(patch_voltage_source(source.read_text(), source.name))
    if not vectorize:
        return gen
    simd = work / "simd"
    simd.mkdir()
    _run([tool("modcc"), "-t", "cpu", "--simd", "-N", "arb", "-c", name, "-o", str(simd), *mods], "modcc", work)
    for header in simd.glob("*.hpp"):
        if "result.kind=arb_mechanism_kind_density;" not in header.read_text():
            continue
        source = simd / f"{header.stem}_cpu.cpp"
        text, _ = patch_simd_source(source.read_text())
        check_simd_writes(text, source.name)
        (gen / source.name).write_text(text)
    return gen


def build_directory(directory: Path | str, name: str = "gradgen", vectorize: bool = True) -> Path:
    """Build every ``.mod`` file of a directory (see :func:`build_catalogue`)."""
    files = sorted(Path(directory).glob("*.mod"))
    if not files:
        raise GradgenError(f"no .mod files in {directory}")
    return build_catalogue({f.name: f.read_text() for f in files}, name, vectorize)


def modcc_accepts(text: str) -> bool:
    """Whether Arbor's modcc compiles ``text`` (run alone, no C++ compiler: fast)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.mod").write_text(text)
        proc = subprocess.run([tool("modcc"), "-t", "cpu", "-N", "arb", "-o", tmp,
                               str(Path(tmp) / "m.mod")], capture_output=True, text=True)
    return proc.returncode == 0


def _run(cmd: list[str], what: str, work: Path) -> None:
    """Run a build tool; its failure as one line: the first error, without the temporary path."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr + proc.stdout).replace(f"{work}/", "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines) if "error" in line.lower()), 0)
        first = " ".join(lines[at:at + 2])  # modcc: "error: file:(line, col)" then the reason
        raise GradgenError(f"{what} failed: {first[:300]}",
                           hint="gradgen generated code its build tools reject: please report it "
                                "with the .mod files")
