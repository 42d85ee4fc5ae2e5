"""The constant-radius transform on every reference geometry: ΔV, mirror errors, run times.

For each cell of :func:`gradgen.checks.cells.example_cells` (C4A when ../shared is present):
the transform's time, max |V_transformed − V_original| with hh + pas over ``t_end`` ms
(argument 1, default 250), and the mirror error of the carrier (Xd against V on a passive
cable) before and after the transform. Prints a markdown table and the rows as JSON.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradgen.checks.cells import example_cells  # noqa: E402
from gradgen.targets.arbor.geometry.check import check_equivalence, mirror_error  # noqa: E402
from gradgen.targets.arbor.geometry.transform import equivalent_cell, worst_radius_ratio  # noqa: E402

C4A = ROOT.parent / "shared" / "data" / "C4A.swc"


def geometry_report(t_end: float = 250.0, dt: float = 0.025,
                    cells: dict[str, tuple] | None = None) -> list[dict]:
    """Transform each example cell and measure: ΔV (hh + pas, ``t_end``), mirror error
    after and before (random and root profiles), and run times."""
    rows = []
    for name, (morph, labels, policy) in (cells or example_cells(C4A)).items():
        t0 = time.perf_counter()
        geo = equivalent_cell(morph, labels, policy, 100.0, 1.0)
        t_transform = time.perf_counter() - t0
        eq = check_equivalence(geo, t_end, dt)
        row = {"cell": name, "radius_ratio": worst_radius_ratio(morph),
               "transform_s": t_transform, "dV_mV": eq["max_abs_dV_mV"],
               "spikes": eq["spikes_original_site0"], "sim_original_s": eq["wall_original_s"],
               "sim_equivalent_s": eq["wall_equivalent_s"]}
        for prof in ("random", "root"):
            after = mirror_error(geo, profile=prof)
            before = mirror_error(geo, transformed=False, profile=prof)
            row[f"mirror_after_{prof}"] = after["max_rel_error"]
            row[f"mirror_before_{prof}"] = before["max_rel_error"]
            row["n_cvs"] = after["n_cvs"]
        rows.append(row)
    return rows


def _markdown(rows: list[dict]) -> str:
    head = ("| cell | CVs | r max/min | max ΔV hh+pas (mV) | mirror before (random / root) "
            "| mirror after (random / root) | transform (s) | sim orig / transformed (s) |\n"
            "|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['cell']} | {r['n_cvs']} | {r['radius_ratio']:.3g} | {r['dV_mV']:.1e} "
        f"| {100 * r['mirror_before_random']:.3g} % / {100 * r['mirror_before_root']:.3g} % "
        f"| {r['mirror_after_random']:.1e} / {r['mirror_after_root']:.1e} "
        f"| {r['transform_s']:.3f} | {r['sim_original_s']:.3f} / {r['sim_equivalent_s']:.3f} |\n"
        for r in rows)
    return head + body


if __name__ == "__main__":
    report = geometry_report(float(sys.argv[1]) if len(sys.argv) > 1 else 250.0)
    print(_markdown(report))
    print(json.dumps(report, indent=1))
