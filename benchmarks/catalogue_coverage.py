"""Coverage of Arbor's own catalogue: `gradgen check DIR --all-params` on its 46 files.

Each file as its authors wrote it, on its own (:func:`gradgen.checks.coverage.check_file`:
the HH test cable, 20 ms at dt 0.0025, step from 10 ms, point processes driven every 5 ms,
junctions joining two points of the cable, voltage processes on its middle fifth;
Ca pools and Ca-activated channels with the project mechanisms that close their ion links;
files that cannot move V beside hh). Reads ../shared/corpus/arbor-catalogue by path.

Writes benchmarks/results/catalogue_coverage.json (rows and seconds per file) and prints the
markdown table of docs/nmodl.md.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from gradgen.checks.coverage import check_file, row_ok

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT.parent / "shared" / "corpus" / "arbor-catalogue"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds


def status(row) -> str:
    if row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND):
        return "runs beside hh" if row.runs_beside else "passes"
    return "refused" if row.forward_max_abs_diff_mV is None else "FAILS"


def main() -> list[dict]:
    if not CATALOGUE.is_dir():
        sys.exit(f"{CATALOGUE} not found")
    rows = []
    for d in ("default", "allen", "bbp"):
        for path in sorted((CATALOGUE / d).glob("*.mod")):
            start = time.perf_counter()
            row = check_file(path, DT, T_END)
            rows.append({**asdict(row), "file": f"{d}/{path.name}", "status": status(row),
                         "seconds": round(time.perf_counter() - start, 1),
                         "error": row.error and row.error.replace(str(CATALOGUE) + "/", "")})
            print(f"{rows[-1]['file']}: {rows[-1]['status']} ({rows[-1]['seconds']} s)", file=sys.stderr)
    out = ROOT / "benchmarks" / "results" / "catalogue_coverage.json"
    out.write_text(json.dumps({"dt": DT, "t_end": T_END, "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| file | result | forward max abs diff (mV) | worst dV/dθ rel. error (parameter) | note |",
             "|---|---|---|---|---|"]
    for r in rows:
        fwd = "-" if r["forward_max_abs_diff_mV"] is None else f"{r['forward_max_abs_diff_mV']:.1e}"
        worst = "-" if r["worst_rel_error"] is None else f"{r['worst_rel_error']:.1e} ({r['worst_parameter']})"
        note = (r["error"] or ("cannot move V (no current, nothing read)" if r["runs_beside"] else "")).replace("|", "/")
        lines.append(f"| {r['file']} | {r['status']} | {fwd} | {worst} | {' '.join(note.split())[:150]} |")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("passes", "runs beside hh", "refused", "FAILS")}
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" (of {len(rows)})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
