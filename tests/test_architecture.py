"""The package's shape: the data flow is visible in the imports, and names have one owner.

parse → lower → derive → emit → build → run → use: a module may import from its own stage
or an earlier one, never a later one; no module imports another module's private names;
every generated identifier is spelled only in gradgen/protocol.py; the compiler front end
imports without Arbor.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gradgen"

#: Stages in data-flow order; a module belongs to the longest matching prefix.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("gradgen.errors", "gradgen.params", "gradgen.protocol", "gradgen.version",
              "gradgen.extras", "gradgen.resources", "gradgen.strict_json", "gradgen.outputs",
              "gradgen.cached_artefact")),
    ("nmodl", ("gradgen.nmodl",)),
    ("sensitivity", ("gradgen.sensitivity",)),
    ("emit", ("gradgen.manifest", "gradgen.targets.base", "gradgen.targets.arbor.emit",
              "gradgen.targets.arbor.emit_fused", "gradgen.targets.arbor.translate", "gradgen.convert",
              "gradgen.homeostasis.convert", "gradgen.targets.neuron.emit")),
    ("build", ("gradgen.targets.arbor.build", "gradgen.targets.arbor.simd_patch",
               "gradgen.targets.arbor.process_patch", "gradgen.targets.arbor.exact_patch",
               "gradgen.targets.arbor.exact_simd", "gradgen.targets.neuron.build")),
    ("run", ("gradgen.targets.arbor.derived", "gradgen.targets.arbor.decor", "gradgen.targets.arbor.sites",
             "gradgen.targets.arbor.recipe", "gradgen.targets.arbor.geometry", "gradgen.targets.arbor.morphology",
             "gradgen.targets.arbor.blowup", "gradgen.targets.arbor.step_check",
             "gradgen.targets.arbor.swc_check", "gradgen.targets.arbor.versions", "gradgen.targets.arbor.fusion",
             "gradgen.targets.arbor.exact_carrier", "gradgen.targets.arbor.model", "gradgen.targets.arbor.network",
             "gradgen.targets.neuron.shadow", "gradgen.targets.neuron.point_processes", "gradgen.targets.neuron.model")),
    ("use", ("gradgen.targets.neuron.check", "gradgen.losses", "gradgen.tuning", "gradgen.homeostasis",
             "gradgen.checks")),
    ("interface", ("gradgen.cli",)),
]
#: The seams that may reach forward, each only inside functions, by design: the package
#: facade (lazy public names), the target registry and each target's object (emit, build
#: and runtime of one simulator behind one interface).
SEAMS = {"gradgen", "gradgen.targets", "gradgen.targets.arbor", "gradgen.targets.neuron"}


def stage_of(module: str) -> int:
    best, index = "", None
    for i, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    if index is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES")
    return index


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of every gradgen import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "gradgen":
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "gradgen"]
    return out


def test_every_module_has_a_stage():
    for name in modules():
        if name not in SEAMS:
            stage_of(name)


def test_no_import_points_back_up_the_pipeline():
    known = modules()
    problems = []
    for name, path in known.items():
        if name in SEAMS:
            continue
        mine = stage_of(name)
        for target, names, line in imports(path):
            # "from gradgen.x import y" may import the module gradgen.x.y
            full = [f"{target}.{n}" for n in names if f"{target}.{n}" in known] or [target]
            for imported in full:
                if imported in SEAMS:
                    if imported == "gradgen.targets":  # the registry: any stage from emit on
                        if mine < stage_of("gradgen.convert"):
                            problems.append(f"{path.name}:{line} {name} uses the target registry")
                        continue
                    problems.append(f"{path.name}:{line} {name} imports the facade {imported}")
                    continue
                if stage_of(imported) > mine:
                    problems.append(f"{path.relative_to(ROOT)}:{line} {name} ({STAGES[mine][0]}) imports "
                                    f"{imported} ({STAGES[stage_of(imported)][0]})")
    assert not problems, "\n".join(problems)


def test_no_private_name_crosses_modules():
    problems = []
    for name, path in modules().items():
        for target, names, line in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [part for part in target.split(".") if part.startswith("_") and not part.startswith("__")]
            if private:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {', '.join(private)} from {target}")
    assert not problems, "\n".join(problems)


#: Generated identifiers (ions gg<k>, gs<k>, gsg, gp<k>, stores gj/gc/gv/gu, contributor
#: variables gg_*, mechanism prefixes); an attribute such as ``err.orig_exc`` is not one.
LITERAL = re.compile(r"(?<![.\w])(gg[0-9{<_]|gs[0-9{<]|gsg|gradz_|gradx_|gx_|grad_|orig_|gp[0-9{<]|gj[0-9{<]|gc[0-9{<]|gv[{<]"
                     r"|gu[0-9{<])")


def test_generated_names_are_spelled_only_in_the_protocol():
    files = [p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".j2")] + list((ROOT / "pycat").glob("*.py"))
    hits = []
    for path in files:
        if path == PACKAGE / "protocol.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if LITERAL.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_templates_take_their_names_from_the_protocol():
    """A template renders with ``names`` bound to gradgen.protocol (and spells none itself)."""
    from gradgen import protocol
    from gradgen.targets.arbor.emit import template

    assert template("hub.mod.j2").environment.globals["names"] is protocol


def test_compiler_front_end_imports_without_arbor():
    """parse, lower, derive and emit (convert) run where Arbor is not installed."""
    script = (
        "import sys\n"
        "class NoArbor:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'arbor' or name.startswith('arbor.'):\n"
        "            raise ImportError('arbor is hidden in this test')\n"
        "sys.meta_path.insert(0, NoArbor())\n"
        "import gradgen.nmodl, gradgen.sensitivity\n"
        "from gradgen.nmodl.lower import lower_file\n"
        "from gradgen.sensitivity.derive import derive_contributor\n"
        "from gradgen.convert import convert\n"
        "from gradgen.params import parse_param_list\n"
        f"convert([{str(ROOT / 'mechanisms' / 'hh.mod')!r}], sys.argv[1], parse_param_list(['hh.gnabar']))\n"
        "assert 'arbor' not in sys.modules\n"
        "print('ok')\n")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", script, str(Path(tmp) / "out")],
                              capture_output=True, text=True, cwd=tmp)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("name", ["GradientModel", "CellSpec", "Decor", "convert", "run_tuning", "mse_gradient"])
def test_facade_names_resolve(name):
    import gradgen

    assert getattr(gradgen, name) is not None
    assert name in gradgen.__all__
