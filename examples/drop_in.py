"""Drop gradient mechanisms into an ordinary Arbor model and get dL/dθ from one run.

    python examples/drop_in.py

The model is written with Arbor's own calls; only `arbor.decor()` becomes `gradgen.Decor()`.
"""
from pathlib import Path

import arbor
import numpy as np
from arbor import units as U

import gradgen

HERE = Path(__file__).resolve().parent

# 1. Convert the mechanisms once, choosing the parameters θ (here per region for gnabar).
gradgen.convert([HERE.parent / "mechanisms" / "hh.mod"], "/tmp/gradgen-drop-in",
                gradgen.parse_param_list(["hh.gnabar@proximal,hh.gnabar@distal,hh.gkbar"]))
model = gradgen.GradientModel.load("/tmp/gradgen-drop-in")

# 2. The user's Arbor model: morphology, labels, decor, CV policy.
tree = arbor.segment_tree()
tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(500, 0, 0, 0.5), tag=1)
labels = arbor.label_dict({"proximal": "(cable 0 0 0.5)", "distal": "(cable 0 0.5 1)"})
decor = gradgen.Decor()  # records the same calls as arbor.decor()
decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
decor.paint("(all)", arbor.density("hh"))
decor.place("(location 0 0)", arbor.i_clamp(10 * U.ms, 80 * U.ms, 0.1 * U.nA))
cell = gradgen.CellSpec(arbor.morphology(tree), decor, labels, arbor.cv_policy_fixed_per_branch(50))

# 3. One simulation gives V and dV/dθ at the probe sites (moved to their CV centres).
sites = ["(location 0 0)", "(location 0 1)"]
target = model.simulate(cell, sites, 100, 0.025, gradients=False,
                        values={"hh.gnabar@proximal": 0.1, "hh.gnabar@distal": 0.1}).v
traces = model.simulate(cell, sites, 100, 0.025)
loss, grad = gradgen.mse_gradient(traces, target)
print(f"loss {loss:.3f} mV^2")
for ref, g in zip(model.params, grad):
    print(f"dL/d{ref.name} = {g:.6g}")
print("max |dV/dgnabar@distal| at the far end:", np.abs(traces.dv[1, 1]).max())
