"""Gradients for a published NEURON model, loaded from its own hoc files as its authors ship them.

Schmidt-Hieber, Jonas & Bischofberger (2007), dentate gyrus granule cells (ModelDB 95960,
github.com/ModelDBRepository/95960): a reconstructed cell (``cell_N/membrane.hoc`` with its
3-D points, 34 sections), passive membrane (NEURON's built-in ``pas``, scaled per section
for spines), the authors' ``spines.mod`` and their configuration (``share/config.hoc``).
Nothing of the model is copied into gradgen: pass its folder.

    python examples/neuron_modeldb.py MODEL_DIR [--cell 2] [--dt 0.025]

The model's own ``spines.mod`` is compiled with nrnivmodl (cached) and loaded as the
authors' ``nrnivmodl`` would; then ``instrument`` swaps pas (gradgen's ``mechanisms/pas.mod``
is NEURON's pas) and spines for their gradient versions, keeping every value the hoc set.
θ = g_pas on every section (each keeps its spine-scaled value; θ moves all of them
together) and e_pas on the dendrites. A step current into a distal dendrite; V and dV/dθ at
the soma and at that dendrite, checked here against central finite differences of the
untouched model. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
T_END = 60.0
PARAMS = ["pas.g", "pas.e@den"]


def load_model(h, model_dir: Path, cell: int):
    """The authors' cell as their control panel builds it (config, then the cell's template)."""
    from gradgen.targets.neuron.build import build_library

    h.nrn_load_dll(str(build_library([("spines.mod", (model_dir / "spines.mod").read_text())])))
    os.chdir(model_dir)  # the hoc files open their neighbours by relative paths
    h.load_file("stdrun.hoc")
    h.load_file("share/config.hoc")
    h.load_file(f"cell_{cell}/membrane.hoc")
    return getattr(h, f"cell_{cell}")()


def main(model_dir: Path, cell: int = 2, dt: float = 0.025) -> dict:
    from neuron import h

    from gradgen.targets.neuron import instrument
    from gradgen.targets.neuron.model import simulate

    model_dir = model_dir.resolve()
    out = Path(tempfile.mkdtemp())
    neuron_cell = load_model(h, model_dir, cell)
    sections = list(neuron_cell.all)
    dendrites = list(neuron_cell.den)
    tip = neuron_cell.distalDendLoc
    site = tip.secRef.sec(tip.loc)
    stim = h.IClamp(site)
    stim.delay, stim.dur, stim.amp = 5.0, 40.0, 0.05
    sites = [neuron_cell.somaLoc.secRef.sec(0.5), site]

    def run() -> np.ndarray:
        return simulate(h, sites, T_END, dt, v_init=0.0).v  # the model's rest is e_pas = 0

    def shift(which: str, step: float) -> None:
        for sec in (sections if which == "g" else dendrites):
            for seg in sec:
                setattr(seg.pas, which, getattr(seg.pas, which) + step)

    plain = run()
    fd = []
    for which, step in (("g", 1e-9), ("e", 1e-3)):
        shift(which, step)
        up = run()
        shift(which, -2 * step)
        down = run()
        shift(which, step)
        fd.append((up - down) / (2 * step))

    model = instrument(h, PARAMS, [ROOT / "mechanisms" / "pas.mod", model_dir / "spines.mod"], out,
                       sections=sections, regions={"den": dendrites})
    traces = model.run(sites, T_END, dt, v_init=0.0)
    errors = [[float(np.linalg.norm(traces.u[s, k] - fd[k][s]) / np.linalg.norm(fd[k][s])) for s in range(2)]
              for k in range(len(PARAMS))]
    return {"model": "ModelDB 95960", "cell": cell, "dt": dt, "sections": len(sections),
            "segments": sum(sec.nseg for sec in sections), "parameters": PARAMS,
            "forward_max_abs_diff_mV": float(np.max(np.abs(traces.v - plain))),
            "dv_rel_error": errors, "peak_dV_mV": float(np.max(np.abs(plain[1])))}


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("model_dir", type=Path, help="the model's folder (a checkout of ModelDBRepository/95960)")
    cli.add_argument("--cell", type=int, default=2, help="which reconstructed cell (cell_N; default 2)")
    cli.add_argument("--dt", type=float, default=0.025, help="time step in ms (default 0.025)")
    args = cli.parse_args()
    print(json.dumps(main(args.model_dir, args.cell, args.dt)))
