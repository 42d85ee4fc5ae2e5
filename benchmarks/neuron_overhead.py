"""Cost of computing gradients inside NEURON, as a ratio to the plain NEURON run.

The shared benchmark cell of overhead.py built in NEURON: soma 20 µm × diam 20 µm (1
segment), axon 400 µm × diam 1 µm in two sections of 5 segments, hh everywhere, 0.2 nA into
the soma from 10 to 960 ms, 1000 ms at dt 0.025 ms (fixed step). K = 1, 3, 10 parameters
(10: gnabar, gkbar, gl on soma / proximal / distal axon, and el), with the shadow carrier
(the default: K copies of the cell) and the ion carrier (``corrected``). NEURON cannot unload
a mechanism library, so each (K, carrier) runs in its own process, where the plain run (the
original hh.mod, compiled in the same library) and the gradient run alternate; times are
medians of the repeats. Run construction (the swap, the shadow cells) is excluded.

Writes benchmarks/results/neuron_overhead.json.
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T_END, DT, REPEATS = 1000.0, 0.025, 5
REGIONS = ("soma", "proximal", "distal")
SCHEMES = ("shadow", "corrected")
PARAM_SETS = {
    1: ["hh.gnabar"],
    3: ["hh.gnabar", "hh.gkbar", "hh.gl"],
    10: [f"hh.{p}@{r}" for p in ("gnabar", "gkbar", "gl") for r in REGIONS] + ["hh.el"],
}


def worker(k: int, scheme: str) -> dict:
    """One K and carrier: build, then alternate plain and gradient runs; median seconds of each."""
    from gradgen.convert import convert
    from gradgen.params import parse_param_list
    from gradgen.protocol import original_name
    from gradgen.targets.neuron.model import NeuronModel, simulate

    out = tempfile.mkdtemp()
    convert([ROOT / "mechanisms" / "hh.mod"], out, parse_param_list(PARAM_SETS[k]), scheme=scheme, target="neuron")
    model = NeuronModel.load(out)
    h = model.h

    def cell() -> tuple[list, list, object]:
        soma, prox, dist = (h.Section(name=n) for n in REGIONS)
        soma.L, soma.diam, soma.nseg = 20.0, 20.0, 1
        for axon in (prox, dist):
            axon.L, axon.diam, axon.nseg = 200.0, 1.0, 5
        prox.connect(soma(1.0))
        dist.connect(prox(1.0))
        sections = [soma, prox, dist]
        for sec in sections:
            sec.insert(original_name("hh"))
        stim = h.IClamp(soma(0.5))
        stim.delay, stim.dur, stim.amp = 10.0, 950.0, 0.2
        return sections, [soma(0.5), dist(0.9)], stim

    times: dict[str, list[float]] = {"plain": [], "gradient": []}
    for _ in range(REPEATS):
        for name in times:  # one cell at a time: NEURON simulates every section that exists
            sections, sites, stim = cell()
            if name == "gradient":
                model.swap(sections, {r: [s] for r, s in zip(REGIONS, sections)})
            start = time.perf_counter()
            if name == "gradient":
                model.run(sites, T_END, DT)
            else:
                simulate(h, sites, T_END, DT)
            times[name].append(time.perf_counter() - start)
            model.release()  # the shadow cells go before the cell they read
            del sections, sites, stim
    plain, grad = statistics.median(times["plain"]), statistics.median(times["gradient"])
    return {"K": k, "scheme": scheme, "plain_s": plain, "gradient_s": grad, "ratio": grad / plain, "repeats": times}


def main() -> dict:
    rows = []
    for k, scheme in [(k, scheme) for k in PARAM_SETS for scheme in SCHEMES]:
        proc = subprocess.run([sys.executable, __file__, "--worker", str(k), scheme], capture_output=True,
                              text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"K = {k:2d}, {scheme}: plain {rows[-1]['plain_s']:.3f} s, gradient {rows[-1]['gradient_s']:.3f} s, "
              f"ratio {rows[-1]['ratio']:.2f}")
    import neuron

    result = {"cell": "soma 20x20 um + axon 2 x 200 um x 1 um (11 segments), hh", "t_end_ms": T_END, "dt_ms": DT,
              "neuron": neuron.__version__, "python": platform.python_version(), "machine": platform.machine(),
              "rows": rows}
    out = ROOT / "benchmarks" / "results" / "neuron_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
