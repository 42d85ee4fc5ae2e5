"""Gradients on the Allen cell of Arbor's own example, built by the example's own code.

    python examples/allen_cell.py [--t-end 250] [--dt 0.025]

Arbor's `single_cell_allen.py` (a published Allen Institute model: SWC, fitted parameters
per region, Arbor's allen catalogue) is read by path from ../shared/corpus/ and its
`make_cell` runs as written, with the one change `A.decor()` → `gradgen.Decor()`;
`gradgen.recorded_cells()` records the cell it builds. Its mechanisms, the 12-state KINETIC
NaV included, are converted from Arbor's catalogue files as their authors wrote them.

Two features of this cell are not carried by the gradients yet; gradgen refuses them in one
line rather than return a silently incomplete gradient, and this example then shows the
refusals and runs the cell with the two stated changes (:func:`supported_variant`):

- cm painted per region (the fit has 2.1–9.0 µF/cm²): one cm for the cell, the fit's values
  weighted by membrane area;
- the Ca reversal potential from `nernst/x=ca`, which would follow cai (θ → ica → cai → eca):
  eca fixed at its initial Nernst value.

Prints dV/dθ at the soma for a few parameters, NaV's included.
"""
from __future__ import annotations

import argparse
import ast
import math
import sys
import types
from pathlib import Path
from typing import Any, Callable

import arbor
from arbor import units as U

import gradgen

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus"
EXAMPLE = CORPUS / "arbor-allen-example"
CATALOGUE = CORPUS / "arbor-catalogue"
#: the mechanisms the fit paints (pas from Arbor's default catalogue, the rest from allen)
MECHANISMS = [CATALOGUE / "default" / "pas.mod"] + [
    CATALOGUE / "allen" / f"{name}.mod" for name in
    ("NaV", "K_T", "Kd", "Kv2like", "Kv3_1", "SK", "Ca_HVA", "Ca_LVA", "CaDynamics", "Ih", "Im_v2")]
PARAMS = "NaV.gbar@soma,NaV.gbar@axon,Kv3_1.gbar@soma,pas.g@dend"
OUT = Path("/tmp/gradgen-allen")


def available() -> bool:
    return (EXAMPLE / "single_cell_allen.py").exists() and all(m.exists() for m in MECHANISMS)


def load_make_cell() -> Callable[..., Any]:
    """The example's ``make_cell`` (and what it calls), with only ``A.decor()`` replaced.

    Only the script's function definitions and imports run: its top level simulates 1.4 s
    and plots with seaborn against a NEURON trace that is not shipped.
    """
    source = (EXAMPLE / "single_cell_allen.py").read_text()
    if source.count("A.decor()") != 1:
        raise RuntimeError("the example no longer builds its decor with one A.decor() call")
    tree = ast.parse(source.replace("A.decor()", "gradgen.Decor()"))
    plotting = {"seaborn", "pandas", "matplotlib.pyplot"}
    keep = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ImportFrom))
            or (isinstance(node, ast.Import) and not {a.name for a in node.names} & plotting)]
    module = types.ModuleType("single_cell_allen")  # registered: its dataclass looks itself up
    module.gradgen = gradgen
    sys.modules[module.__name__] = module
    exec(compile(ast.Module(keep, []), str(EXAMPLE / "single_cell_allen.py"), "exec"), module.__dict__)
    return module.make_cell


def allen_cell() -> tuple[arbor.cable_cell, gradgen.CellSpec]:
    """The example's cell as Arbor builds it, and as gradgen recorded it."""
    with gradgen.recorded_cells() as specs:
        cell, _offset = load_make_cell()(EXAMPLE, "single_cell_allen.swc", "single_cell_allen_fit.json")
    return cell, specs[0]


def _region_areas(morphology: arbor.morphology) -> dict[int, float]:
    """Membrane area (µm²) per SWC tag."""
    areas: dict[int, float] = {}
    for b in range(morphology.num_branches):
        for seg in morphology.branch_segments(b):
            r1, r2 = seg.prox.radius, seg.dist.radius
            length = math.dist((seg.prox.x, seg.prox.y, seg.prox.z), (seg.dist.x, seg.dist.y, seg.dist.z))
            areas[seg.tag] = areas.get(seg.tag, 0.0) + math.pi * (r1 + r2) * math.hypot(length, r1 - r2)
    return areas


def supported_variant(spec: gradgen.CellSpec, celsius: float = 34.0) -> gradgen.CellSpec:
    """The cell with the two stated changes: one area-weighted cm, eca fixed at its initial
    Nernst value (cai 5e-5 mM, cao 2 mM as the example sets them)."""
    tags = {'"soma"': 1, '"axon"': 2, '"dend"': 3, '"apic"': 4}  # the SWC convention add_swc_tags uses
    areas = _region_areas(spec.morphology)
    cms = {tags[p.region]: p.kwargs["cm"].value_as(U.F / U.m2)
           for p in spec.decor.paints if "cm" in p.kwargs}
    cm = sum(cms[t] * areas[t] for t in cms) / sum(areas[t] for t in cms)
    eca = 1000 * 8.31446261815324 * (celsius + 273.15) / (2 * 96485.3321233100184) * math.log(2.0 / 5e-5)
    decor = gradgen.Decor()
    decor.set_property(**{**spec.decor.properties, "cm": cm * U.F / U.m2})
    for args, kwargs in spec.decor.ions:
        if kwargs.get("method") is not None:
            kwargs = {k: v for k, v in kwargs.items() if k != "method"} | {"rev_pot": eca * U.mV}
        decor.set_ion(*args, **kwargs)
    for p in spec.decor.paints:
        kwargs = {k: v for k, v in p.kwargs.items() if k != "cm"}
        if p.what is not None or kwargs:
            decor.paint(p.region, p.what, **kwargs)
    for p in spec.decor.places:
        decor.place(p.locset, p.what, p.label)
    return gradgen.CellSpec(spec.morphology, decor, spec.labels, spec.cv_policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-end", type=float, default=250.0, help="ms (the stimulus starts at 200 ms)")
    parser.add_argument("--dt", type=float, default=0.025)
    args = parser.parse_args()
    if not available():
        print(f"skipped: Arbor's Allen example or its mechanisms are not under {CORPUS}")
        return
    gradgen.convert(MECHANISMS, OUT, gradgen.parse_param_list([PARAMS]))
    model = gradgen.GradientModel.load(OUT)
    _cell, spec = allen_cell()
    sites = ['"midpoint"']
    try:
        model.simulate(spec, sites, 1.0, args.dt)
    except gradgen.GradgenError as refusal:
        print(f"the cell as written: {refusal}")
    variant = supported_variant(spec)
    traces = model.simulate(variant, sites, args.t_end, args.dt)
    print(f"with one cm and a fixed eca: V at the soma {traces.v[0].min():.1f} to {traces.v[0].max():.1f} mV")
    for k, ref in enumerate(model.params):
        dv = traces.dv[0, k]
        print(f"max |dV/d{ref.name}| = {abs(dv).max():.4g} mV per unit")


if __name__ == "__main__":
    sys.exit(main())
