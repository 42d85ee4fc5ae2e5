"""Issue #13's accuracy acceptance: the exact carrier against finite differences, beside the ion carrier.

Cells (each with its own θ), dt 0.1 / 0.025 / 0.0025 ms, both carriers in the same run:
- ``hh_cable``: HH cable 500 µm, r 0.5 µm, 50 CVs, 0.1 nA at x = 0, 100 ms; θ = gnabar, gkbar, gl;
- ``hh_axon``: the HH axon with its soma, 0.2 nA into the soma, 100 ms; same θ;
- ``c4a_hh_pas``: C4A.swc (../shared/data, skipped when absent), hh + pas (g 1e-4 S/cm²)
  everywhere, 1 nA into the root for 200 ms (16 spikes); θ = hh.gnabar, hh.gkbar, pas.g;
- ``io_bundled``: the IO cell of examples/io.toml (bundled morphology), 300 ms, its 12 θ;
- ``multi_channel``: a spiking cable with hh, ka, km, ih, cahva and pas (6 mechanisms, 12
  spikes in 200 ms at 0.1 nA); θ = one conductance of each;
- ``synapse_cable``: the HH cable of tests/test_synapses.py (200 µm, 10 CVs) driven by 12
  input spikes into one expsyn (weight 0.01 µS, e 10 mV), 50 ms; θ = expsyn.weight, tau, e
  and hh.gkbar;
- ``ca_chain``: the cable of tests/test_ion_coupling.py (100 µm, 10 CVs, hh + cahva + cad +
  sk, 0.3 nA), 50 ms; θ = cahva.gbar, cad.taur, sk.gbar, sk.kd.
Errors are relative L2 norms over time against central FD of the original mechanisms
(:func:`gradgen.checks.fd.check_model`): worst parameter (``dv``), θ-scaled dV/dθ at the worse
site (``scaled``), the θ-scaled MSE loss gradient (``loss``), and the FD's own convergence (the
change between its two steps; the compared FD uses the smaller one). Writes
benchmarks/results/exact_accuracy.json and prints a markdown table.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import arbor
import numpy as np
from arbor import units as U

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradgen.checks.cells import (  # noqa: E402
    HH_AXON_SITES,
    cable_cell_spec,
    hh_axon_spec,
    near_far_sites,
    swc_cell_spec,
)
from gradgen.checks.fd import check_model  # noqa: E402
from gradgen.targets.arbor.decor import CellSpec, Decor, SpikeInput  # noqa: E402
from gradgen.convert import convert  # noqa: E402
from gradgen.params import ParamRef  # noqa: E402
from gradgen.targets.arbor.model import GradientModel  # noqa: E402

DTS = (0.1, 0.025, 0.0025)
C4A = ROOT.parent / "shared" / "data" / "C4A.swc"
C4A_VALUES = {"pas.g": 1e-4}  # pas at its default 1e-3 S/cm² leaves one spike; 1e-4: 16 spikes
MULTI_VALUES = {"ka.gbar": 0.001, "km.gbar": 0.0002, "pas.g": 5e-5, "cahva.gbar": 5e-5}


def _converted(work: Path, files: list[str], params: list[str]) -> Path:
    out = work / "_".join(Path(f).stem for f in files)
    convert([ROOT / "mechanisms" / f for f in files], out, [ParamRef.parse(p) for p in params])
    return out


def synapse_cable() -> CellSpec:
    """200 µm HH cable, 10 CVs, one expsyn at 0.1 fed 12 spikes (seeded) from 2 to 45 ms."""
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(200, 0, 0, 0.5), tag=1)
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    decor.place("(location 0 0.1)", arbor.synapse("expsyn"), "syn")
    times = np.sort(np.random.default_rng(1).uniform(2, 45, 12))
    return CellSpec(arbor.morphology(tree), decor, arbor.label_dict(), arbor.cv_policy_fixed_per_branch(10),
                    [SpikeInput("syn", times, 0.01)])


def cases(work: Path, only: set[str] = frozenset()) -> dict:
    """name -> (converted directory or IO problem, spec, sites, t_end, values) (those in
    ``only`` where it is given)."""
    if only and only <= {"synapse_cable", "ca_chain"}:
        return {name: case for name, case in _coverage_cases(work).items() if name in only}
    hh = _converted(work, ["hh.mod"], ["hh.gnabar", "hh.gkbar", "hh.gl"])
    out = {
        "hh_cable": (hh, cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=90), ["(location 0 0)", "(location 0 1)"],
                     100.0, {}),
        "hh_axon": (hh, hh_axon_spec(100.0), HH_AXON_SITES, 100.0, {}),
    }
    if C4A.exists():
        spec = swc_cell_spec(C4A, ["hh", "pas"], stimulus_nA=1.0)
        out["c4a_hh_pas"] = (_converted(work, ["hh.mod", "pas.mod"], ["hh.gnabar", "hh.gkbar", "pas.g"]),
                             spec, near_far_sites(spec.morphology), 200.0, C4A_VALUES)
    from gradgen.tuning.config import load_config
    from gradgen.tuning.run import setup
    config = dataclasses.replace(load_config(ROOT / "examples" / "io.toml"),
                                 morphology=ROOT / "morphologies" / "io_like.swc")
    problem = setup(config, work / "io").problem
    values = problem.param.model_values(problem.param.z0())
    out["io_bundled"] = (problem.model.directory, problem.protocol.spec(problem.spec), list(problem.sites),
                         300.0, values)
    files = ["hh.mod", "ka.mod", "km.mod", "ih.mod", "cahva.mod", "pas.mod"]
    multi = _converted(work, files, ["hh.gnabar", "hh.gkbar", "ka.gbar", "km.gbar", "ih.gbar",
                                     "cahva.gbar", "pas.g"])
    out["multi_channel"] = (multi, cable_cell_spec([Path(f).stem for f in files], stimulus_nA=0.1, t_off=190),
                            ["(location 0 0.01)", "(location 0 0.99)"], 200.0, MULTI_VALUES)
    return {**out, **_coverage_cases(work)}


def _coverage_cases(work: Path) -> dict:
    """A synapse-driven cell and the Ca chain (the exact carrier's coverage beyond densities)."""
    ends = ["(location 0 0.05)", "(location 0 0.95)"]
    synapse = _converted(work, ["expsyn.mod", "hh.mod"], ["expsyn.weight", "expsyn.tau", "expsyn.e", "hh.gkbar"])
    chain = _converted(work, ["hh.mod", "cahva.mod", "cad.mod", "sk.mod"],
                       ["cahva.gbar", "cad.taur", "sk.gbar", "sk.kd"])
    return {"synapse_cable": (synapse, synapse_cable(), ends, 50.0, {"expsyn.weight": 0.01, "expsyn.e": 10.0}),
            "ca_chain": (chain, cable_cell_spec(["hh", "cahva", "cad", "sk"], length=100.0, n_cv=10,
                                                stimulus_nA=0.3), ends, 50.0, {})}


def summary(report, seconds: float) -> dict:
    return {"dv": max(p["rel_error"] for p in report.parameters),
            "scaled": max(report.scaled_rel_error_per_site),
            "loss": report.loss_gradient_rel_error,
            "fd_convergence": max(p["fd_convergence"] for p in report.parameters),
            "forward_max_abs_diff_mV": report.forward_max_abs_diff_mV,
            "check_seconds": seconds,
            "parameters": {p["name"]: {"rel_error": p["rel_error"], "fd_convergence": p["fd_convergence"]}
                           for p in report.parameters}}


def main() -> list[dict]:
    warnings.simplefilter("ignore")  # the ion carrier's coarse-dt warning: measured here instead
    only = set(sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (directory, spec, sites, t_end, values) in cases(Path(tmp), only).items():
            if only and name not in only:
                continue
            models = {carrier: GradientModel.load(directory, carrier=carrier) for carrier in ("exact", "ion")}
            assert models["exact"].simulation(spec, sites, values=values).exact, name
            plain = models["ion"].simulate(spec, sites, t_end, 0.025, gradients=False, values=values).v
            spikes = int(((plain[0, 1:] > 0) & (plain[0, :-1] <= 0)).sum())
            for dt in DTS:
                row = {"cell": name, "t_end_ms": t_end, "dt_ms": dt, "spikes_at_site0_dt0.025": spikes}
                for carrier, model in models.items():
                    start = time.perf_counter()
                    report = check_model(model, spec, sites, t_end, dt, values)
                    row[carrier] = summary(report, time.perf_counter() - start)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items()}, default=str)[:600], flush=True)
    out = ROOT / "benchmarks" / "results" / ("exact_accuracy.json" if not only else
                                             f"exact_accuracy_{'_'.join(sorted(only))}.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| cell | dt (ms) | exact: dV/dθ worst θ, θ-scaled, loss (FD convergence) | ion carrier: same |")
    print("|---|---|---|---|")
    for r in rows:
        e, i = r["exact"], r["ion"]
        print(f"| {r['cell']} | {r['dt_ms']} | {e['dv']:.1e}, {e['scaled']:.1e}, {e['loss']:.1e} "
              f"({e['fd_convergence']:.0e}) | {i['dv']:.2%}, {i['scaled']:.2%}, {i['loss']:.2%} |")
    return rows


if __name__ == "__main__":
    main()
