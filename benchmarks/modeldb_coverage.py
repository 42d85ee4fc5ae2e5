"""Coverage of published NEURON mechanisms: the ModelDB corpus through parse, translate,
convert and check, by stage and by refusal reason.

Reads every ``.mod`` file under ../shared/corpus/modeldb/<id>/ by path (never copied). Each
file goes on its own through

- parse: :func:`gradgen.nmodl.parser.parse_file` (refusals of constructs gradgen cannot take
  are raised here, with file:line:col);
- translate: ``gradgen translate`` (lower, then print as NMODL that modcc accepts);
- convert: ``gradgen convert`` of exactly what ``check`` converts for the file
  (:func:`gradgen.checks.coverage.check_inputs`: the file, the project mechanisms that close
  its ion links, hh as background; every parameter of the file as θ);
- check (``--check``): compile both catalogues and compare with central finite differences
  of the original (:func:`gradgen.checks.coverage.check_converted`: HH test cable, 20 ms at
  dt 0.0025, the issue's bounds: forward ≤ 1e-8 mV, dV/dθ ≤ 2 %).

Checking compiles two catalogues per file, which takes minutes on a small machine, so check
results are cached by the content of the converted directory (and of gradgen's check code):
a rerun re-checks only files whose generated mechanisms changed. ``--check --limit N``
checks at most N uncached files (run it in batches in the background); without ``--check``
the cached results are reported and the rest counted as not checked. ``--files LIST --merge``
reruns the listed files through every stage and replaces their rows in the last full run's
results (after a fix that changes a few files).

Every failure is classified: a refusal (a GradgenError) by its reason, anything else as a
traceback (a bug). Writes benchmarks/results/modeldb_coverage.json and prints the markdown
of docs/modeldb.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import functools
import hashlib
import json
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from gradgen.cached_artefact import cache_root
from gradgen.checks.coverage import CoverageRow, check_converted, check_inputs, row_ok
from gradgen.convert import convert
from gradgen.errors import GradgenError

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "modeldb"
RESULTS = ROOT / "benchmarks" / "results" / "modeldb_coverage.json"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds
STAGE_SECONDS = {"parse": 60, "translate": 90, "convert": 90, "check": 900}

#: NEURON-only constructs the issue lists as refused for the Arbor target (the NEURON target
#: takes them where NEURON can); a file using one is outside the ≥ 75 % acceptance set.
NEURON_ONLY = ("VERBATIM", "POINTER", "ARTIFICIAL_CELL")

#: (pattern on the error message, reason). The first that matches names the reason.
REASONS: list[tuple[str, str]] = [
    (r"^(\w+) is not supported yet", r"\1"),
    (r"^(\w+) are not supported yet", r"\1"),
    (r"^FROM loops are not supported", "FROM loops"),
    (r"^arrays are not supported", "arrays"),
    (r"^unexpected ", "parse error"),
    (r"net_send", "net_send"),
    (r"POST_EVENT", "POST_EVENT"),
    (r"JUNCTION_PROCESS", "JUNCTION_PROCESS"),
    (r"VOLTAGE_PROCESS", "VOLTAGE_PROCESS"),
]

#: θ values a file is checked at instead of its .mod defaults, stated in its row (``values``):
#: 116094's electrode stimuli default ``del``, ``dur`` and ``amp`` (and ``tau``) to 0, set from
#: hoc, so at the defaults they never switch on and nothing moves V. They are checked switched
#: on inside the 20 ms run (from 5 to 15 ms), 2 nS: a few tenths of the test stimulus.
#: ShortDendrite's IClamp2 clamps its current to i ≤ 0, i.e. it acts only while V < Erev
#: (−70 mV by default), which the test cell (hh, rest −65 mV) does not reach; it is checked
#: at Erev −50 mV, where it acts at rest and is cut off during spikes. ``del``/``dur`` are switch times and are
#: not FD-compared (:mod:`gradgen.checks.excluded`).
CHECK_VALUES: dict[str, dict[str, float]] = {
    "116094/LongDendrite_stim2.mod": {"IClamp2.del": 5.0, "IClamp2.dur": 10.0, "IClamp2.amp": 0.002,
                                      "IClamp2.tau": 5.0},
    "116094/ShortDendrite_stim2.mod": {"IClamp2.del": 5.0, "IClamp2.dur": 10.0, "IClamp2.amp": 0.002,
                                       "IClamp2.tau": 5.0, "IClamp2.Erev": -50.0},
    "116094/LongDendrite_shuntInhib.mod": {"shuntI.del": 5.0, "shuntI.dur": 10.0, "shuntI.amp": 0.002},
    "116094/ShortDendrite_shuntInhib.mod": {"shuntI.del": 5.0, "shuntI.dur": 10.0, "shuntI.amp": 0.002},
    # 168858's single-electrode clamp defaults toff and amp to 0 (off from the start): it is
    # checked holding −60 mV through its 1 MΩ until 10 ms, then released
    "168858/vsource.mod": {"Vsource.toff": 10.0, "Vsource.amp": -60.0},
    "168858/HHmodel_Scripts_NeuronMechanisms_vsource.mod": {"Vsource.toff": 10.0, "Vsource.amp": -60.0},
}

_COMMENTS = re.compile(r"\bCOMMENT\b.*?\bENDCOMMENT\b|[:?][^\n]*", re.S)
_VERBATIM = re.compile(r"\bVERBATIM\b(.*?)\bENDVERBATIM\b", re.S)
_NO_OP = re.compile(r"^\s*return\s+0\s*;\s*$")


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*/*.mod"), key=lambda p: (int(p.parent.name), p.name))


def neuron_only_uses(path: Path) -> list[str]:
    """The NEURON-only constructs a file uses (outside comments); a VERBATIM block that holds
    only ``return 0;`` is NEURON's idiom for a PROCEDURE without an error code, not C to run."""
    text = path.read_text(errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    verbatim = [m.group(1) for m in _VERBATIM.finditer(text)]
    text = _COMMENTS.sub("", _VERBATIM.sub(" VERBATIM ", text))
    used = [w for w in NEURON_ONLY if re.search(rf"\b{w}\b", text)]
    if "VERBATIM" in used and all(_NO_OP.match(body) for body in verbatim):
        used.remove("VERBATIM")
    return used


def clean(error: str) -> str:
    """An error without this machine's paths: corpus files as <id>/<file>, a check's
    temporary copies as original/<file>."""
    error = error.replace(str(CORPUS) + "/", "")
    return re.sub(r"/tmp/\S*?/out/", "", error)


def reason(error: str) -> str:
    """The refusal reason of a one-line GradgenError: its message without file:line:col, the
    hint and the names of this file."""
    message = re.sub(r"^\S+:\d+:\d+: ", "", error).split(" (hint:")[0]
    for pattern, label in REASONS:
        m = re.search(pattern, message)
        if m:
            return m.expand(label)
    return re.sub(r"'[^']*'", "'…'", message)[:90]


class StageTimeout(BaseException):  # not caught by the `except Exception` inside libraries
    pass


def _alarm(signum, frame):
    raise StageTimeout


def run_stage(row: dict, stage: str, action, seconds: int | None = None) -> bool:
    """Run one stage with a time limit (``seconds``, else :data:`STAGE_SECONDS`); record the
    first failure in ``row``. True on success."""
    seconds = STAGE_SECONDS[stage] if seconds is None else seconds
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    start = time.perf_counter()
    try:
        action()
        return True
    except GradgenError as err:
        row.update(failed=stage, kind="refused", error=clean(str(err)), reason=reason(str(err)))
    except StageTimeout:
        row.update(failed=stage, kind="timeout", error=f"{stage} took over {seconds} s",
                   reason=f"{stage} timeout")
    except RecursionError as err:
        row.update(failed=stage, kind="traceback", error=f"RecursionError: {err}", reason="RecursionError")
    except Exception as err:  # a bug: recorded with its innermost frame, and the run goes on
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        row.update(failed=stage, kind="traceback", error=clean(f"{type(err).__name__} at {where}: {err}")[:300],
                   reason=f"{type(err).__name__} at {where}")
    finally:
        signal.alarm(0)
        row["seconds"][stage] = round(time.perf_counter() - start, 2)
    return False


def directory_hash(out: Path, values: dict[str, float] | None = None, translation: str = "") -> str:
    """What the check of a converted directory depends on: its files, gradgen's check code,
    the θ values it is checked at (:data:`CHECK_VALUES`) and the file's translation (the
    check's reference where modcc rejects the original: a change of lowering can change it
    and leave the converted files as they were)."""
    h = hashlib.sha256(translation.encode())
    if values:
        h.update(json.dumps(values, sort_keys=True).encode())
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if path.name == "gradients.json":  # holds absolute source paths of this run's tmp dir
            content = re.sub(rb'"[^"]*/out/', b'"', content)
        h.update(str(path.relative_to(out)).encode() + b"\0" + content)
    h.update(checks_hash().encode())
    return h.hexdigest()[:24]


@functools.cache  # the code does not change during a run; read once, not per row
def checks_hash() -> str:
    """gradgen's code (Python and templates): a check result made by other code is out of
    date. Not only gradgen/checks: the check builds the exact carrier's and the fused
    mechanisms itself (gradgen/targets), which the converted files do not show."""
    h = hashlib.sha256()
    package = ROOT / "gradgen"
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".j2", ".lark")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def check_cache() -> Path:
    return cache_root() / "modeldb-check"


def file_row(path: Path, work: Path, check: bool, check_seconds: int = STAGE_SECONDS["check"]) -> dict:
    from gradgen.nmodl.lower import lower_file
    from gradgen.nmodl.parser import parse_file
    from gradgen.targets.arbor.translate import translate_lowered

    rel = f"{path.parent.name}/{path.name}"
    row: dict = {"file": rel, "neuron_only": neuron_only_uses(path), "failed": None, "kind": None,
                 "reason": None, "error": None, "seconds": {}, "check": None}
    out = work / rel.replace("/", "_") / "out"
    plan: dict = {}
    if not run_stage(row, "parse", lambda: parse_file(path)):
        return row
    def do_translate():
        plan["translation"] = translate_lowered(lower_file(path))

    if not run_stage(row, "translate", do_translate):
        return row

    def do_convert():
        files, params, beside = check_inputs(path)
        plan["beside"] = beside
        convert(files, out, params)

    if not run_stage(row, "convert", do_convert):
        return row
    values = CHECK_VALUES.get(rel)
    row["runs_beside"], row["converted_hash"] = plan["beside"], directory_hash(out, values, plan["translation"])
    cached = check_cache() / f"{row['converted_hash']}.json"
    if cached.exists():
        row["check"], row["checks_hash"] = json.loads(cached.read_text()), checks_hash()
    elif check:
        result = CoverageRow(str(path), parsed=True, converted=True, runs_beside=plan["beside"])
        if run_stage(row, "check", lambda: check_converted(out, result, DT, T_END, values=values), check_seconds):
            row["check"] = {k: v for k, v in asdict(result).items() if k != "file"}
            row["checks_hash"] = checks_hash()
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(row["check"]))
    return judge(row)


def judge(row: dict) -> dict:
    """Record a check result's failure (a refusal, or outside the bounds) in ``row``."""
    if row["check"] is None:
        return row
    result = CoverageRow(row["file"], **row["check"])
    if result.error:
        row.update(failed="check", kind="refused", error=clean(result.error), reason=reason(result.error))
    elif not row_ok(result, FORWARD_BOUND_MV, GRADIENT_BOUND):
        row.update(failed="check", kind="fails", reason="outside the bounds",
                   error=f"forward {result.forward_max_abs_diff_mV:.1e} mV, "
                         f"dV/dθ {result.worst_rel_error:.1e} ({result.worst_parameter})")
    return row


STAGES = ("parse", "translate", "convert")


def stage_counts(rows: list[dict]) -> dict:
    """How many files pass each stage; ``checked`` counts the files with a check result,
    ``passed`` those within the bounds."""
    counts = {"files": len(rows)}
    for i, stage in enumerate(STAGES):
        counts[stage] = sum(r["failed"] not in STAGES[: i + 1] for r in rows)
    current = [r for r in rows if r["check"] is not None and not stale(r)]
    counts["checked"] = len(current)
    counts["passed"] = sum(r["failed"] is None for r in current)
    old = [r for r in rows if r["check"] is not None and stale(r)]
    counts["checked_by_older_check_code"] = len(old)
    counts["passed_by_older_check_code"] = sum(r["failed"] is None for r in old)
    return counts


def stale(row: dict) -> bool:
    """A check result made by other check code than this run's (not rechecked yet)."""
    return row["check"] is not None and row.get("checks_hash") != checks_hash()


def summary(rows: list[dict]) -> dict:
    refusals: dict[str, int] = {}
    for r in rows:
        if r["failed"] and not (r["failed"] == "check" and stale(r)):
            key = f"{r['failed']}: {r['reason']}"
            refusals[key] = refusals.get(key, 0) + 1
    return {"all": stage_counts(rows),
            "without_neuron_only": stage_counts([r for r in rows if not r["neuron_only"]]),
            "tracebacks": sum(r["kind"] == "traceback" for r in rows),
            "timeouts": sum(r["kind"] == "timeout" for r in rows),
            "parse_errors": sum(r["reason"] == "parse error" for r in rows),
            "failures_by_reason": dict(sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0])))}


def markdown(result: dict) -> str:
    """The tables of docs/modeldb.md: stages, reasons, and one row per file."""
    s = result["summary"]
    lines = ["| files | parsed | translated | converted | checked | pass check "
             "| checked by older check code (pass) |", "|---|---|---|---|---|---|---|"]
    for label, key in (("all", "all"), ("without VERBATIM/POINTER/ARTIFICIAL_CELL", "without_neuron_only")):
        c = s[key]
        lines.append(f"| {label}: {c['files']} | {c['parse']} | {c['translate']} | {c['convert']} "
                     f"| {c['checked']} | {c['passed']} | {c['checked_by_older_check_code']} "
                     f"({c['passed_by_older_check_code']}) |")
    lines += ["", f"Tracebacks: {s['tracebacks']}. Parse errors: {s['parse_errors']}. "
              f"Time limits hit: {s['timeouts']}.", "",
              "| stage: reason | files |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in s["failures_by_reason"].items()]
    lines += ["", "| file | NEURON-only | result | forward (mV) | dV/dθ rel. error (parameter) | first refusal or failure |",
              "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        check = r["check"] or {}
        fwd, worst = check.get("forward_max_abs_diff_mV"), check.get("worst_rel_error")
        fwd = "-" if fwd is None else f"{fwd:.1e}"
        worst = "-" if worst is None else f"{worst:.1e} ({check['worst_parameter']})"
        status = ("passes" if r["check"] and not r["failed"] else
                  f"{r['failed']} {r['kind']}" if r["failed"] else "converted, not checked")
        if stale(r):
            status += " (older check code)"
        error = " ".join((r["error"] or "").split()).replace("|", "/")
        lines.append(f"| {r['file']} | {', '.join(r['neuron_only']) or '-'} | {status} | {fwd} "
                     f"| {worst} | {error[:160]} |")
    return "\n".join(lines)


def report() -> dict:
    """The last full run's rows with the check results cached since (by converted content)."""
    result = json.loads(RESULTS.read_text())
    for row in result["rows"]:
        cached = check_cache() / f"{row.get('converted_hash')}.json"
        if row["failed"] in (None, "check") and cached.exists() and not stale(row):
            row.update(check=json.loads(cached.read_text()), failed=None, kind=None, reason=None, error=None)
            judge(row)
    result["summary"] = summary(result["rows"])
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return result


def results(rows: list[dict], start: float) -> dict:
    return {"dt": DT, "t_end": T_END, "forward_bound_mV": FORWARD_BOUND_MV,
            "gradient_bound": GRADIENT_BOUND, "seconds": round(time.perf_counter() - start, 1),
            "summary": summary(rows), "rows": rows}


def write_results(rows: list[dict], start: float) -> dict:
    result = results(rows, start)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return result


def replaced(previous: list[dict], fresh: list[dict]) -> list[dict]:
    """The last run's rows, in corpus order, with the rows of this run in their place (the
    others keep their results; a check result made by other check code counts apart)."""
    by_file = {row["file"]: row for row in fresh}
    rows = [by_file.pop(row["file"], row) for row in previous]
    return rows + list(by_file.values())


def main(argv: list[str] | None = None) -> dict:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--check", action="store_true", help="check converted files not in the cache")
    args.add_argument("--limit", type=int, default=None, help="check at most N uncached files")
    args.add_argument("--only", default=None, help="only files whose path contains this")
    args.add_argument("--report", action="store_true",
                      help="no conversion: refresh the check results of the last full run from the cache")
    args.add_argument("--files", type=Path, default=None,
                      help="only the files listed in this text file (<id>/<name>.mod per line)")
    args.add_argument("--merge", action="store_true",
                      help="with --files: replace their rows in results/modeldb_coverage.json")
    args.add_argument("--jobs", type=int, default=1, help="files run at once, each in a process of its own")
    args.add_argument("--check-seconds", type=int, default=STAGE_SECONDS["check"],
                      help="time limit of one file's check (files checked at once share the cores)")
    opts = args.parse_args(argv)
    if not CORPUS.is_dir():
        sys.exit(f"{CORPUS} not found")
    if opts.report:
        return report()
    if opts.jobs > 1 and opts.limit is not None:
        sys.exit("--limit counts checks in one process: use it with --jobs 1")
    files = [f for f in corpus_files() if opts.only is None or opts.only in str(f)]
    if opts.files is not None:  # in the list's order: the most wanted checks first
        listed = opts.files.read_text().split()
        by_name = {f"{f.parent.name}/{f.name}": f for f in files}
        files = [by_name[name] for name in listed if name in by_name]
    rows, start, checked = [], time.perf_counter(), 0
    full = opts.only is None and opts.files is None  # a partial run only fills the check cache
    merge = opts.merge and opts.files is not None
    previous = json.loads(RESULTS.read_text())["rows"] if (full or merge) and RESULTS.exists() else []
    work = Path(tempfile.mkdtemp(prefix="gradgen-modeldb-"))
    try:
        if opts.jobs > 1:  # each file on its own: the rows come back in the corpus's order
            pool = concurrent.futures.ProcessPoolExecutor(opts.jobs)
            n = len(files)
            done = pool.map(file_row, files, [work] * n, [opts.check] * n, [opts.check_seconds] * n)
        else:
            pool = None
            done = (file_row(path, work, opts.check and (opts.limit is None or checked < opts.limit),
                             opts.check_seconds) for path in files)
        for row in done:
            checked += "check" in row["seconds"]
            rows.append(row)
            print(f"{row['file']}: {row['failed'] or 'ok'} {row['reason'] or ''}", file=sys.stderr, flush=True)
            if full or merge:  # after each file: a run stopped early leaves consistent results
                write_results(replaced(previous, rows), start)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(work, ignore_errors=True)
    result = write_results(replaced(previous, rows), start) if full or merge else results(rows, start)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
