"""Convert time and memory of large KINETIC schemes (12+ states), one file per fresh process.

`gradgen convert FILE --all-params` on Arbor's allen NaV (12 states, LINEAR INITIAL) and the
ModelDB mechanisms of ../shared/corpus/modeldb with 12 or more STATEs in a KINETIC block.
Each file runs in its own Python process, so its peak resident memory (getrusage
ru_maxrss, interpreter and imports included) is its own; tracemalloc is left off because it
slows SymPy's allocations severalfold and the seconds are the point.
Before the matrix form (gradgen.sensitivity.linear_solve) NaV ran out of 6 GB after 8 minutes.

Writes benchmarks/results/kinetic_convert.json: per file, states, θ count, outcome
("converted" or the one-line refusal), wall and CPU seconds (imports included; the wall
time grows with the load of a shared machine, the CPU time much less) and peak RSS in MB.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
NAV = CORPUS / "arbor-catalogue" / "allen" / "NaV.mod"
MODELDB = CORPUS / "modeldb"
MIN_STATES = 12
TIMEOUT_S = 600  # the "in seconds": anything near this is a failure anyway

WORKER = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
start = time.perf_counter()
from gradgen.convert import convert
from gradgen.errors import GradgenError
try:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = convert([sys.argv[1]], Path(tmp) / "out")
    outcome, n_params = "converted", len(manifest.parameters)
except GradgenError as error:
    outcome, n_params = "refused: " + str(error).splitlines()[0], None
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"outcome": outcome, "params": n_params, "seconds": round(seconds, 2),
                  "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                  "peak_rss_MB": round(usage.ru_maxrss / 1024, 1)}))
"""


def kinetic_states(path: Path) -> int:
    """STATE count of a file with a KINETIC block (0 without one); a rough reading of the
    text, only to pick the files."""
    text = path.read_text(errors="replace").replace("\r", "\n")
    text = re.sub(r":.*", "", text)
    if not re.search(r"^\s*KINETIC\b", text, re.M | re.I):
        return 0
    block = re.search(r"\bSTATE\s*\{(.*?)\}", text, re.S | re.I)
    if not block:
        return 0
    body = re.sub(r"\(.*?\)|FROM\s+\S+\s+TO\s+\S+", " ", block.group(1), flags=re.I)
    return len(body.split())


def files() -> list[tuple[Path, int]]:
    out = [(NAV, kinetic_states(NAV))] if NAV.exists() else []
    if MODELDB.is_dir():
        for path in sorted(MODELDB.rglob("*.mod")):
            n = kinetic_states(path)
            if n >= MIN_STATES:
                out.append((path, n))
    return out


def measure(path: Path) -> dict:
    try:
        done = subprocess.run([sys.executable, "-c", WORKER, str(path)], capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"outcome": f"timeout after {TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"outcome": "crashed: " + (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> list[dict]:
    chosen = files()
    if not chosen:
        sys.exit(f"no KINETIC files found under {CORPUS}")
    rows = []
    for path, states in chosen:
        row = {"file": str(path.relative_to(CORPUS)), "states": states, **measure(path)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = ROOT / "benchmarks" / "results" / "kinetic_convert.json"
    out.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
