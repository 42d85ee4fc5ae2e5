"""Accuracy of dV/dθ and of the loss gradient, corrected vs naive update, on two cells.

- ``hh_axon``: the shared benchmark cell (soma 1 CV 20 µm × r 10 µm, 10 axon CVs 40 µm ×
  r 0.5 µm), 0.2 nA into the soma from 10 ms to max(t_end − 40, 0.6·t_end) ms; sites at the
  soma and the axon tip. Its gradient cell runs on the constant-radius equivalent geometry.
- ``uniform_cable``: HH cable (500 µm, r 0.5 µm, 50 CVs), 0.1 nA at x = 0 until t_end − 10;
  sites at both ends.

θ = (gnabar, gkbar, gl), 50 and 250 ms, dt 0.025 / 0.01 / 0.0025 ms. Errors are relative L2
norms over time against central finite differences of the original hh.mod (near / far =
the two sites, worst parameter; loss = θ-scaled MSE gradient). "naive" is the update of the
original study (no conductance-change term, no split compensation), measured in the same run.

Writes benchmarks/results/accuracy.json and prints a markdown table.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gradgen.checks.cells import HH_AXON_SITES, cable_cell_spec, hh_axon_spec
from gradgen.checks.fd import check_model
from gradgen.convert import convert
from gradgen.params import ParamRef
from gradgen.targets.arbor.model import GradientModel

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ["hh.gnabar", "hh.gkbar", "hh.gl"]
CELLS = {
    "hh_axon": (lambda t_end: hh_axon_spec(t_end), HH_AXON_SITES),
    "uniform_cable": (lambda t_end: cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=t_end - 10),
                      ["(location 0 0)", "(location 0 1)"]),
}


def main() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for scheme in ("corrected", "naive"):
            convert([ROOT / "mechanisms" / "hh.mod"], Path(tmp) / scheme,
                    [ParamRef.parse(p) for p in PARAMS], scheme)
            models[scheme] = GradientModel.load(Path(tmp) / scheme, carrier="ion")  # the ion carrier's two schemes
        for cell, (make_spec, sites) in CELLS.items():
            for t_end in (50.0, 250.0):
                spec = make_spec(t_end)
                for dt in (0.025, 0.01, 0.0025):
                    row = {"cell": cell, "t_end_ms": t_end, "dt_ms": dt}
                    for scheme, model in models.items():
                        report = check_model(model, spec, sites, t_end, dt)
                        per_site = [p["rel_error_per_site"] for p in report.parameters]
                        row[scheme] = {
                            "near": max(e[0] for e in per_site),
                            "far": max(e[1] for e in per_site),
                            "loss_gradient": report.loss_gradient_rel_error,
                            "fd_convergence": max(p["fd_convergence"] for p in report.parameters),
                            "forward_max_abs_diff_mV": report.forward_max_abs_diff_mV}
                    row["geometry_max_abs_dV_mV"] = models["corrected"].geometry(spec).max_abs_dV_mV
                    rows.append(row)
                    print(row, flush=True)
    out = ROOT / "benchmarks" / "results" / "accuracy.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| cell | t_end | dt (ms) | dV/dθ near / far, loss gradient (gradgen) | same, naive update |")
    print("|---|---|---|---|---|")
    for r in rows:
        c, n = r["corrected"], r["naive"]
        print(f"| {r['cell']} | {r['t_end_ms']:g} ms | {r['dt_ms']} | {c['near']:.2%} / {c['far']:.2%}, "
              f"{c['loss_gradient']:.2%} | {n['near']:.1%} / {n['far']:.1%}, {n['loss_gradient']:.1%} |")
    return rows


if __name__ == "__main__":
    main()
