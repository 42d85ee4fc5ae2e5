"""Gradients on the Allen cell of Arbor's own example, built by the example's own code.

    python examples/allen_cell.py [--t-end 250] [--dt 0.01]

Arbor's `single_cell_allen.py` (a published Allen Institute model: SWC, fitted parameters
per region, Arbor's allen catalogue) is read by path from ../shared/corpus/ and its
`make_cell` runs as written, with the one change `A.decor()` → `gradgen.Decor()`;
`gradgen.recorded_cells()` records the cell it builds. Its mechanisms, the 12-state KINETIC
NaV included, are converted from Arbor's catalogue files as their authors wrote them.

Nothing else changes: cm painted per region (the fit has 2.1–9.0 µF/cm²) is carried by the
gradient cell's geometry (a CV's radius follows its cm, so the carrier's vol/C stays equal on
every CV), and the Ca reversal potential from `nernst/x=ca` follows cai, with the gradients
following it too (θ → ica → cai → eca → I_Ca, :mod:`gradgen.sensitivity.nernst`).

Prints dV/dθ at the soma for a few parameters, NaV's included.
"""
from __future__ import annotations

import argparse
import ast
import sys
import types
from pathlib import Path
from typing import Any, Callable

import arbor

import gradgen

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus"
EXAMPLE = CORPUS / "arbor-allen-example"
CATALOGUE = CORPUS / "arbor-catalogue"
#: the mechanisms the fit paints (pas from Arbor's default catalogue, the rest from allen)
MECHANISMS = [CATALOGUE / "default" / "pas.mod"] + [
    CATALOGUE / "allen" / f"{name}.mod" for name in
    ("NaV", "K_T", "Kd", "Kv2like", "Kv3_1", "SK", "Ca_HVA", "Ca_LVA", "CaDynamics", "Ih", "Im_v2")]
PARAMS = "NaV.gbar@soma,NaV.gbar@axon,Kv3_1.gbar@soma,pas.g@dend,Ca_LVA.gbar@soma,CaDynamics.gamma@soma"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-end", type=float, default=250.0, help="ms (the stimulus starts at 200 ms)")
    parser.add_argument("--dt", type=float, default=0.01, help="ms (the coarse-step warning asks ≤ 0.015 on this cell)")
    args = parser.parse_args()
    if not available():
        print(f"skipped: Arbor's Allen example or its mechanisms are not under {CORPUS}")
        return
    gradgen.convert(MECHANISMS, OUT, gradgen.parse_param_list([PARAMS]))
    model = gradgen.GradientModel.load(OUT)
    _cell, spec = allen_cell()
    sites = ['"midpoint"']
    traces = model.simulate(spec, sites, args.t_end, args.dt)
    print(f"V at the soma {traces.v[0].min():.1f} to {traces.v[0].max():.1f} mV over {args.t_end:g} ms")
    for k, ref in enumerate(model.params):
        dv = traces.dv[0, k]
        print(f"max |dV/d{ref.name}| = {abs(dv).max():.4g} mV per unit")


if __name__ == "__main__":
    sys.exit(main())
