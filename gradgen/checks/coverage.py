"""`gradgen check DIR_OR_FILES --all-params`: how far each `.mod` file gets, as a table.

Each file is taken on its own through every stage: parsed, converted (lowered, derived,
emitted with all its parameters), compiled (gradient and original catalogues), then
checked on the uniform test cable (:func:`gradgen.checks.fd.cable_cell_spec`) against central
finite differences of the original: forward fidelity and the worst relative dV/dθ error.
A channel that cannot make a cell spike on its own is painted together with the project's
``hh.mod`` (only the file's own parameters are differentiated, GLOBAL ones included). An original that modcc
rejects (NEURON dialect) is replaced by its ``gradgen translate`` output as the reference.
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from gradgen.errors import GradgenError
from gradgen.manifest import Manifest
from gradgen.resources import mechanisms_dir
from gradgen.strict_json import strict_json
from gradgen.targets.arbor.build import modcc_accepts


@dataclass
class CoverageRow:
    """One file's result; a stage that was not reached is None, a failed one False."""

    file: str
    parsed: bool = False
    converted: bool | None = None
    compiled: bool | None = None
    forward_max_abs_diff_mV: float | None = None
    worst_rel_error: float | None = None
    worst_parameter: str | None = None
    translated_reference: bool = False
    runs_beside: bool = False  # cannot move V: checked beside the background channel's θ
    error: str | None = None
    #: θ values the check ran at instead of the .mod defaults (e.g. a stimulus that is off by default)
    values: dict[str, float] | None = None
    #: θ left out of the comparison, each with its reason (:mod:`gradgen.checks.excluded`)
    excluded: dict[str, str] | None = None


def mod_files(paths: Sequence[str | Path]) -> list[Path]:
    """The `.mod` files named, with directories expanded (sorted, not recursive)."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.mod")) if path.is_dir() else [path]
    if not files:
        raise GradgenError("no .mod files given", hint="name files or a directory holding .mod files")
    return files


def use_translated_references(out_dir: Path) -> list[str]:
    """Replace each original copy in a converted directory that modcc rejects by its translation.

    Returns the mechanisms whose reference became the ``gradgen translate`` output.
    """
    from gradgen.nmodl.lower import lower_file
    from gradgen.targets.arbor.translate import translate_lowered

    replaced = []
    for entry in Manifest.load(out_dir).mechanisms:
        copy = out_dir / entry.source_copy
        if not modcc_accepts(copy.read_text()):
            copy.write_text(translate_lowered(lower_file(entry.source)))
            replaced.append(entry.original)
    return replaced


def _ion_links(mech) -> tuple[set[str], set[str]]:
    """(reads, writes) of concentrations and currents: what can connect mechanisms to V."""
    def linking(var: str, ion: str) -> bool:
        return var in (f"{ion}i", f"{ion}o", f"i{ion}")

    reads = {v for ion in mech.ions for v in ion.read if linking(v, ion.name)}
    writes = {v for ion in mech.ions for v in ion.write if linking(v, ion.name)}
    return reads, writes


def partners(mech) -> list[Path]:
    """Project mechanisms that let ``mech``'s ion quantities reach V: a writer of each
    concentration or current it reads, a reader of each concentration it writes (other than
    its writers: a pool reading its own cai gets one too), and so on until every link is
    closed (e.g. SK gets cad and cahva; a Ca pool gets cahva and sk). Without them a Ca
    pool's or a Ca-activated channel's parameters could not move V."""
    from gradgen.nmodl.parser import parse_file

    project = [(f, parse_file(f)) for f in sorted(mechanisms_dir().glob("*.mod"))]
    chosen: list[Path] = []
    members = [mech]
    while True:
        reads = set().union(*(_ion_links(m)[0] for m in members))
        writes = set().union(*(_ion_links(m)[1] for m in members))
        wanted_writers = reads - writes
        # a concentration no member but its writers reads (a Ca pool reading its own cai)
        read_by_others = set().union(*(_ion_links(m)[0] - _ion_links(m)[1] for m in members))
        wanted_readers = {w for w in writes - read_by_others if not w.startswith("i")}
        pick = next(((f, m) for f, m in project if f not in chosen and m.name != mech.name and (
            _ion_links(m)[1] & wanted_writers or _ion_links(m)[0] & wanted_readers)), None)
        if pick is None:
            return chosen
        chosen.append(pick[0])
        members.append(pick[1])


def unsettable(path: Path) -> dict[str, str]:
    """Parameters of a file that the Arbor target cannot take as θ, each with the reason
    (:func:`gradgen.targets.arbor.dialect.check_settable`: 183300 KS's GLOBAL ``k``, which
    Arbor would read as a renaming of the ion k); the check takes the others."""
    from gradgen.nmodl.lower import lower_file
    from gradgen.targets.arbor.dialect import check_settable

    low = lower_file(path)
    refused = {}
    for name in low.parameter_names():
        try:
            check_settable(low, [name])
        except GradgenError as err:
            refused[f"{low.name}.{name}"] = f"not a θ on Arbor: {err.message}"
    return refused


def check_inputs(path: Path) -> tuple[list[Path], list | None, bool]:
    """What `check` converts for one file: (input files, θ or None for the background's,
    whether the file runs beside the background instead of being differentiated).

    The file's partners close its ion links (:func:`partners`); a channel with states, a
    point, junction or voltage process or a linked file gets the project's ``hh.mod`` as
    background.
    """
    from gradgen.nmodl.lower import lower_file
    from gradgen.nmodl.parser import parse_file
    from gradgen.params import ParamRef
    from gradgen.sensitivity.bystanders import bystanders

    mech = parse_file(path)
    linked = partners(mech)
    runs_beside = bool(bystanders([mech, *map(parse_file, linked)]))
    background = mechanisms_dir() / "hh.mod"
    files = [Path(path), *linked]
    if runs_beside:
        return [*files, background], None, True  # the background's θ: the file's own cannot move V
    low = lower_file(path)
    if (mech.kind == "density" and low.name != "hh" and low.states) or mech.kind != "density" or linked:
        files.append(background)
    # every parameter, GLOBALs too (the original's are set through derived names), but those
    # Arbor cannot set (named in the row by check_converted)
    refused = unsettable(path)
    return files, [ParamRef(low.name, p) for p in low.parameter_names()
                   if f"{low.name}.{p}" not in refused], False


def check_file(path: Path, dt: float, t_end: float, stimulus_nA: float = 0.1,
               values: dict[str, float] | None = None) -> CoverageRow:
    """Run one file through all stages; stop at the first that fails.

    A mechanism that cannot move V on its own (:mod:`gradgen.sensitivity.bystanders`) is
    checked beside the background channel instead: the forward run with it and the
    background's gradients (``runs_beside``).
    """
    from gradgen.convert import convert
    from gradgen.nmodl.parser import parse_file

    row = CoverageRow(str(path))
    try:
        parse_file(path)
        row.parsed, row.converted = True, False
        files, params, row.runs_beside = check_inputs(path)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            convert(files, out, params)
            row.converted = True
            check_converted(out, row, dt, t_end, stimulus_nA, values)
    except GradgenError as err:
        row.error = str(err)
    return row


def check_converted(out: Path, row: CoverageRow, dt: float, t_end: float,
                    stimulus_nA: float = 0.1, values: dict[str, float] | None = None) -> CoverageRow:
    """The compile and check stages of :func:`check_file` on a directory ``convert`` wrote
    from :func:`check_inputs`; fills in ``row`` (errors too) and returns it. ``values``: θ
    set away from their defaults (gradient and finite differences alike), recorded in the row."""
    from gradgen.checks.cells import check_cell
    from gradgen.checks.fd import check_model, compared_parameters
    from gradgen.nmodl.parser import parse_file
    from gradgen.targets.arbor.model import GradientModel

    try:
        row.compiled = False
        name = parse_file(row.file).name
        row.translated_reference = name in use_translated_references(out)
        model = GradientModel.load(out)
        built = [model.gradient_catalogue, model.original_catalogue]  # compiles both
        row.compiled = all(path.exists() for path in built)
        if not model.params:
            row.error = "no parameters to differentiate"
            return row
        unknown = sorted(set(values or {}) - {p.name for p in model.params})
        if unknown:
            raise GradgenError(f"cannot set {', '.join(unknown)}: not a parameter of the check",
                               hint="name θ as mechanism.parameter, e.g. hh.gnabar")
        row.values = dict(values) if values else None
        spec, sites = check_cell(model, stimulus_nA, t_end)
        report = check_model(model, spec, sites, t_end, dt, values)
        # a file that runs beside (inject's xd) is not lowered, and none of its values is a θ
        row.excluded = {**({} if row.runs_beside else unsettable(Path(row.file))),
                        **{p["name"]: p["excluded"] for p in report.parameters if p.get("excluded")}} or None
        if not report.moves_v:
            row.error = "no parameter moves V on the test cell: nothing was checked"
            return row
        row.forward_max_abs_diff_mV = report.forward_max_abs_diff_mV
        worst = max(compared_parameters(report), key=lambda p: p["rel_error"])
        row.worst_rel_error, row.worst_parameter = worst["rel_error"], worst["name"]
    except GradgenError as err:
        row.error = str(err)
    return row


def coverage(paths: Sequence[str | Path], dt: float, t_end: float, stimulus_nA: float = 0.1,
             progress: Callable[[str], None] | None = None) -> list[CoverageRow]:
    rows = []
    for path in mod_files(paths):
        if progress:
            progress(path.name)
        rows.append(check_file(path, dt, t_end, stimulus_nA))
    return rows


def _mark(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[value]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def format_table(rows: Sequence[CoverageRow]) -> str:
    """A Markdown table: file, parsed, converted, compiled, forward fidelity, worst error."""
    lines = ["| file | parsed | converted | compiled | forward max abs diff (mV) "
             "| worst dV/dθ rel. error (parameter) | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        worst = "-" if r.worst_rel_error is None else f"{r.worst_rel_error:.2e} ({r.worst_parameter})"
        note = r.error or ("reference: `gradgen translate` output" if r.translated_reference else "")
        if r.runs_beside and not r.error:
            note = "cannot move V: runs beside hh, whose θ are checked"
        note = " ".join(note.split())[:160]
        lines.append(f"| {Path(r.file).name} | {_mark(r.parsed)} | {_mark(r.converted)} "
                     f"| {_mark(r.compiled)} | {_number(r.forward_max_abs_diff_mV)} | {worst} "
                     f"| {note.replace('|', '/')} |")
    return "\n".join(lines)


def rows_json(rows: Sequence[CoverageRow]) -> str:
    return strict_json([asdict(r) for r in rows], indent=1)


def row_ok(row: CoverageRow, forward_tolerance: float, tolerance: float) -> bool:
    """Checked, and within both tolerances."""
    return (row.forward_max_abs_diff_mV is not None and row.worst_rel_error is not None
            and row.forward_max_abs_diff_mV <= forward_tolerance and row.worst_rel_error <= tolerance)


__all__ = ["CoverageRow", "check_converted", "check_file", "check_inputs", "coverage", "format_table", "mod_files", "rows_json",
           "use_translated_references"]
