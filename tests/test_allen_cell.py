"""The Allen cell of Arbor's own example (examples/allen_cell.py): built by the example's own
make_cell with only `A.decor()` → `gradgen.Decor()`, its mechanisms (the 12-state KINETIC NaV
included) converted from Arbor's allen catalogue, dV/dθ against central finite differences
of the original mechanisms. Reads ../shared/corpus by path; skips when it is absent."""
import importlib.util
from pathlib import Path

import arbor
import numpy as np
import pytest
from arbor import units as U

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("allen_cell_example", ROOT / "examples" / "allen_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _example()
pytestmark = pytest.mark.skipif(not example.available(), reason="Arbor's Allen example is not under ../shared/corpus")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from gradgen.convert import convert
    from gradgen.params import parse_param_list
    from gradgen.targets.arbor.model import GradientModel

    out = tmp_path_factory.mktemp("allen") / "out"
    convert(example.MECHANISMS, out, parse_param_list([example.PARAMS]))
    return GradientModel.load(out)


def test_the_cell_as_written_builds_and_follows_nernst(model):
    cell, spec = example.allen_cell()
    assert isinstance(cell, arbor.cable_cell)  # the user's own arbor.cable_cell still builds
    assert len(spec.decor.membrane_property("cm")) == 4  # cm per region, as the fit has it
    # Ca_HVA and Ca_LVA follow eca through cai (CaDynamics writes it; the cell uses nernst)
    assert model.mechanisms["Ca_HVA"].nernst == ["ca"] and model.mechanisms["Ca_LVA"].nernst == ["ca"]


def test_allen_cell_gradients_match_finite_differences_of_the_original_mechanisms(model):
    _cell, variant = example.allen_cell()  # per-region cm, nernst Ca: the cell as written
    # the example's stimulus starts at 200 ms; a short test drives the soma from 1 ms
    variant.decor.place('"midpoint"', arbor.i_clamp(1 * U.ms, 20 * U.ms, 2.0 * U.nA))
    sites, t_end, dt = ['"midpoint"'], 10.0, 0.01  # the coarse-step warning asks dt ≤ 0.015 ms here
    traces = model.simulate(variant, sites, t_end, dt)
    assert traces.v[0].max() > -20.0, "the soma should fire (peak 0.8 mV at 4.7 ms): NaV's gradient is then exercised"
    errors = {}
    for k, ref in enumerate(model.params):
        theta = model.defaults[ref.name]
        painted = [vals for region, mech, vals in variant.decor.densities()
                   if mech.partition("/")[0] == ref.mechanism and region == f'"{ref.region}"']
        theta = painted[0].get(ref.parameter, theta) if painted else theta
        h = 1e-3 * abs(theta)
        up = model.simulate(variant, sites, t_end, dt, gradients=False, values={ref.name: theta + h}).v[0]
        down = model.simulate(variant, sites, t_end, dt, gradients=False, values={ref.name: theta - h}).v[0]
        fd = (up - down) / (2 * h)
        errors[ref.name] = np.linalg.norm(traces.dv[0, k] - fd) / np.linalg.norm(fd)
    print(errors)
    # the bound is 2 %. Measured at dt 0.01: 5.8e-3 to 6.8e-3 for all six θ; at dt
    # 0.0025 5.2e-4 (NaV.gbar@soma), 5.4e-4 (pas.g@dend), 4.9e-4 (CaDynamics.gamma@soma):
    # the scheme's first-order step error (12.7× for 4× dt), the FD steps converged to 2e-6
    assert max(errors.values()) < 0.02, errors
