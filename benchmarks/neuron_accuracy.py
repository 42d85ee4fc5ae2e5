"""Accuracy of dV/dθ and of the loss gradient in NEURON, against central finite differences
of the original NEURON model (the .mod files compiled by nrnivmodl as given).

Cells: the uniform HH cable of the Arbor accuracy table (500 µm, diam 1 µm, Ra 100, 51
segments, 0.1 nA at x = 0), a tapered HH cable (3 → 0.5 µm, 0.5 nA into the thick end),
a soma (20 × 20 µm) with a 1 µm dendrite (a radius step between sections; pas, 0.1 nA) and
C4A (hh + pas, 0.2 nA into the soma, and 2 nA, where it spikes) when
../shared/data/C4A.swc exists. 50 ms (and 250 ms on the uniform cable). Carriers: "shadow"
(the default, copies of the cell) at dt 0.1, 0.025 and 0.0025; the ion carrier "corrected"
at dt 0.025 and 0.0025, and "naive", which drops its split compensation (dt 0.025 on the
uniform cable, as in the NEURON notes' first design). ``--schemes shadow`` runs a subset. Relative L2 errors over time at the two sites (near / far), worst parameter; the
loss is the θ-scaled MSE gradient against the model at θ/1.1. Each case runs in its own
process (NEURON cannot unload a library). Writes benchmarks/results/neuron_accuracy.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
C4A = ROOT.parent / "shared" / "data" / "C4A.swc"
T_END = 50.0
HH = ["hh.gnabar", "hh.gkbar", "hh.gl"]
CASES = {  # name: (mechanisms, θ, cell)
    "uniform HH cable": (["hh"], HH, "cable"),
    "uniform HH cable, 250 ms": (["hh"], HH, "cable"),
    "tapered HH cable 3 -> 0.5 um": (["hh"], HH, "taper"),
    "soma + dendrite (radius step 20 -> 1 um), pas": (["pas"], ["pas.g"], "step"),
    "C4A, hh + pas": (["hh", "pas"], HH + ["pas.g"], "c4a"),
    "C4A, hh + pas, 2 nA (spiking)": (["hh", "pas"], HH + ["pas.g"], "c4a spiking"),
}
DTS = {"shadow": (0.1, 0.025, 0.0025), "corrected": (0.025, 0.0025)}


def worker(name: str, dt: float, scheme: str) -> dict:
    from gradgen.convert import convert
    from gradgen.params import parse_param_list
    from gradgen.protocol import original_name
    from gradgen.targets.neuron.check import NeuronCell, cable, check_cell, swc_cell
    from gradgen.targets.neuron.model import NeuronModel

    mechanisms, params, cell = CASES[name]
    out = tempfile.mkdtemp()
    convert([ROOT / "mechanisms" / f"{m}.mod" for m in mechanisms], out, parse_param_list(params),
            scheme=scheme, target="neuron")

    def step(h) -> NeuronCell:
        soma, dend = h.Section(name="soma"), h.Section(name="dend")
        dend.connect(soma(1))
        soma.L = soma.diam = 20.0
        dend.L, dend.diam, dend.nseg = 500.0, 1.0, 51
        for sec in (soma, dend):
            sec.Ra = 100.0
            sec.insert(original_name("pas"))
        stim = h.IClamp(soma(0.5))
        stim.delay, stim.dur, stim.amp = 1.0, 1e9, 0.1
        return NeuronCell([soma, dend], [soma(0.5), dend(0.99)], keep=[stim])

    builders = {
        "cable": lambda h: cable(h, mechanisms),
        "taper": lambda h: cable(h, mechanisms, diam=(3.0, 0.5), stimulus_nA=0.5),
        "step": step,
        "c4a": lambda h: swc_cell(h, str(C4A), mechanisms),
        "c4a spiking": lambda h: swc_cell(h, str(C4A), mechanisms, stimulus_nA=2.0),
    }
    report = check_cell(NeuronModel.load(out), builders[cell], 250.0 if "250 ms" in name else T_END, dt)
    return {"case": name, "dt": dt, "scheme": scheme,
            "near": max(e[0] for e in report.dv_rel_error), "far": max(e[1] for e in report.dv_rel_error),
            "loss_gradient": report.loss_gradient_rel_error, "fd_convergence": max(report.fd_convergence),
            "forward_max_abs_diff_mV": report.forward_max_abs_diff_mV}


def main(schemes: list[str]) -> list[dict]:
    runs = [(name, dt, scheme) for scheme in schemes for name in CASES for dt in DTS[scheme]
            if not CASES[name][2].startswith("c4a") or C4A.is_file()]
    if "corrected" in schemes:
        runs.append(("uniform HH cable", 0.025, "naive"))
    rows = []
    start = time.perf_counter()
    for name, dt, scheme in runs:
        proc = subprocess.run([sys.executable, __file__, "--worker", name, str(dt), scheme],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"| {name} | {dt} | {scheme} | {r['near']:.3%} / {r['far']:.3%}, {r['loss_gradient']:.3%} | "
              f"{r['forward_max_abs_diff_mV']:.1e} | {r['fd_convergence']:.0e} |", flush=True)
    out = ROOT / "benchmarks" / "results" / "neuron_accuracy.json"
    out.write_text(json.dumps({"t_end_ms": T_END, "rows": rows, "seconds": time.perf_counter() - start},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], float(sys.argv[3]), sys.argv[4])))
    else:
        main(sys.argv[sys.argv.index("--schemes") + 1].split(",") if "--schemes" in sys.argv else list(DTS))
