"""Gradient error by geometry, before and after the constant-radius transform.

Cells of gradgen.targets.arbor.geometry.check.example_cells (HH axon with soma, 2 → 0.5 µm cone, 1 | 0.5 µm
radius step, branched cells, C4A.swc when ../shared/data/C4A.swc exists), hh everywhere,
0.2 nA into the root from 10 to 50 ms, 50 ms, θ = (gnabar, gkbar, gl). Errors against central
finite differences of the original cell: per probe site (root, farthest tip) the relative L2
error of the θ-scaled vector θ_k·dV/dθ_k (worst site), and of the θ-scaled MSE loss gradient.

- before: the gradient cell on the original geometry with the carriers' diffusivity painted
  per half-CV as for a uniform cylinder of that half's mean radius (no transform);
- after: the runtime's default, the electrically identical constant-radius cell.

Writes benchmarks/results/geometry_gradients.json and prints a markdown table.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from gradgen.checks.cells import example_cells, morphology_cell_spec, near_far_sites
from gradgen.checks.fd import check_model
from gradgen.convert import convert
from gradgen.params import ParamRef
from gradgen.targets.arbor.geometry.transform import worst_radius_ratio
from gradgen.targets.arbor.model import GradientModel

ROOT = Path(__file__).resolve().parent.parent
C4A = ROOT.parent / "shared" / "data" / "C4A.swc"
PARAMS = ["hh.gnabar", "hh.gkbar", "hh.gl"]
T_END = 50.0
DTS = (0.025, 0.01, 0.0025)


def main() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        convert([ROOT / "mechanisms" / "hh.mod"], Path(tmp) / "hh", [ParamRef.parse(p) for p in PARAMS])
        model = GradientModel.load(Path(tmp) / "hh", carrier="ion")  # the ion carrier's transform
        for name, (morphology, labels, policy) in example_cells(str(C4A)).items():
            spec = morphology_cell_spec(morphology, labels, policy, ["hh"], 0.2, t_off=T_END)
            sites = near_far_sites(morphology)
            start = time.perf_counter()
            geometry = model.geometry(spec)
            row = {"cell": name, "radius_ratio": worst_radius_ratio(morphology),
                   "n_pieces": len(geometry.equivalent.pieces),
                   "geometry_setup_s": time.perf_counter() - start,
                   "max_abs_dV_mV": geometry.max_abs_dV_mV, "sites": sites}
            for dt in DTS:
                for mode in ("naive", "exact"):
                    model.carrier_geometry = mode
                    report = check_model(model, spec, sites, T_END, dt)
                    row[f"{'before' if mode == 'naive' else 'after'}_dt{dt}"] = {
                        "dv_scaled": max(report.scaled_rel_error_per_site),
                        "loss_gradient": report.loss_gradient_rel_error,
                        "fd_convergence": max(p["fd_convergence"] for p in report.parameters),
                        "forward_max_abs_diff_mV": report.forward_max_abs_diff_mV}
                model.carrier_geometry = "exact"
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks" / "results" / "geometry_gradients.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| cell | r max/min | dt (ms) | dV/dθ, loss gradient: before (no transform) "
            "| after (transform) |\n|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        for dt in DTS:
            b, a = r[f"before_dt{dt}"], r[f"after_dt{dt}"]
            body += (f"| {r['cell']} | {r['radius_ratio']:.3g} | {dt} | {b['dv_scaled']:.1%}, "
                     f"{b['loss_gradient']:.1%} | {a['dv_scaled']:.3%}, {a['loss_gradient']:.3%} |\n")
    return head + body


if __name__ == "__main__":
    main()
