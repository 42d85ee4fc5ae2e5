"""Gradients for a model built the ordinary NEURON way, with one call.

    python examples/neuron_drop_in.py      (needs pip install 'gradgen[neuron]')

The model below is plain NEURON: its own mechanism library (here kdr_neuron.mod, a
NEURON-dialect channel, compiled as `nrnivmodl` would), NEURON's built-in pas, sections,
RANGE values. `instrument` swaps the mechanisms for their gradient versions in place and
returns a model whose runs record V and dV/dθ; dL/dθ of an MSE loss follows by the chain
rule. A region θ (pas.g@dend) is a list of sections.
"""
import tempfile
from pathlib import Path

import numpy as np
from neuron import h

from gradgen.targets.neuron import instrument
from gradgen.targets.neuron.build import build_library

MECHANISMS = Path(__file__).resolve().parent.parent / "mechanisms"

# 1. The user's model (their library, their sections, their values).
h.nrn_load_dll(str(build_library([("kdr_neuron.mod", (MECHANISMS / "kdr_neuron.mod").read_text())])))
h.usetable_kdrn = 0  # rates computed exactly, as the gradient version computes them
soma, dend = h.Section(name="soma"), h.Section(name="dend")
dend.connect(soma(1))
soma.L, soma.diam = 20.0, 2.0
dend.L, dend.diam, dend.nseg = 300.0, 2.0, 31
for sec in (soma, dend):
    sec.Ra = 100.0
    sec.insert("kdrn")
    sec.insert("pas")
soma.gkbar_kdrn = 0.05
dend.g_pas = 2e-4
stim = h.IClamp(soma(0.5))
stim.delay, stim.dur, stim.amp = 1.0, 1e9, 0.3

# 2. One call: θ = (kdrn.gkbar everywhere, pas.g on the dendrite).
model = instrument(h, ["kdrn.gkbar", "pas.g@dend"], [MECHANISMS / "kdr_neuron.mod", MECHANISMS / "pas.mod"],
                   tempfile.mkdtemp(prefix="gradgen-neuron-"), regions={"dend": [dend]})

# 3. One run gives V and dV/dθ; a target trace gives the loss gradient.
sites = [soma(0.5), dend(0.9)]
traces = model.run(sites, tstop=30.0, dt=0.025)
target = traces.v - 0.5  # any recorded or desired trace
residual = traces.v - target
grad = 2 * np.einsum("st,skt->k", residual, traces.u) / residual.size
for p, g in zip(model.manifest.parameters, grad):
    print(f"dL/d{p.name} = {g:.6g}")
