"""pycat: Python and JAX mechanisms inside Arbor 0.12, checked against built-in mechanisms.

Everything runs real Arbor simulations. Measured values when written are in comments.
"""
from __future__ import annotations

from pathlib import Path

import arbor
import numpy as np
import pytest
from arbor import units as U
from pycat_models import (
    Cell,
    Probe,
    cable,
    expsyn_mechanism,
    leak_mechanism,
    simulate,
    state,
    voltage,
)

import pycat
from gradgen.protocol import gradient_ions
from pycat._build import cache_root, shim_path
from pycat.channels import hh, passive
from pycat.grad import bindings_for, gradient_mechanism
from pycat.jaxmech import jax_mechanism

HH = ["hh.gnabar", "hh.gkbar", "hh.gl"]
SEEN: dict = {}  # what the numpy expsyn saw at init


@pytest.fixture(scope="module")
def catalogue():
    """Default catalogue + numpy leak, numpy expsyn, JAX HH, JAX passive."""
    mechs = [leak_mechanism(), expsyn_mechanism(seen=SEEN), jax_mechanism(hh()), jax_mechanism(passive())]
    return pycat.catalogue(mechs, base=arbor.default_catalogue())


def max_abs(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k][:, 1] - b[k][:, 1]))) for k in a)


# ---------------------------------------------------------------- numpy leak vs pas


@pytest.mark.parametrize("n_cv", [1, 1000])
def test_numpy_leak_matches_pas(catalogue, n_cv):
    def cell(mech: str) -> Cell:
        d = arbor.decor().set_property(Vm=-65 * U.mV)
        d.paint("(all)", arbor.density("npleak", {"g": 0.002, "e": -50}) if mech == "npleak"
                else arbor.density("pas/e=-50", {"g": 0.002}))
        d.place("(location 0 0.3)", arbor.i_clamp(2 * U.ms, 10 * U.ms, 0.05 * U.nA))
        return Cell(cable(), d, arbor.cv_policy_fixed_per_branch(n_cv),
                    probes=[voltage("(location 0 0.3)"), voltage("(location 0 0.9)", "far")])

    ours = simulate([cell("npleak")], catalogue, 20)
    ref = simulate([cell("pas")], catalogue, 20)
    assert np.ptp(ref[0, "v"][:, 1]) > 1.0  # the stimulus moves V
    assert max_abs(ours, ref) <= 1e-12  # measured 0 (1 CV and 1000 CVs)


@pytest.mark.parametrize("group_size", [1, 2])
def test_numpy_leak_partial_painting_several_cells_groups_threads(catalogue, group_size):
    """4 cells, 4 (or 2) cell groups, 2 threads; leak painted on part of each cell."""
    regions = ["(cable 0 0 0.37)", "(cable 0 0.21 0.83)", "(all)", "(segment 1)"]

    def cells(mech: str) -> list[Cell]:
        out = []
        for gid, region in enumerate(regions):
            d = arbor.decor().set_property(Vm=-65 * U.mV)
            g = 0.001 * (1 + gid)
            d.paint(region, arbor.density("npleak", {"g": g, "e": -50}) if mech == "npleak"
                    else arbor.density("pas/e=-50", {"g": g}))
            d.place("(location 0 0.5)", arbor.i_clamp(1 * U.ms, 8 * U.ms, (0.05 + 0.02 * gid) * U.nA))
            out.append(Cell(cable(200, 1, n_seg=3), d, arbor.cv_policy_fixed_per_branch(7 + gid),
                            probes=[voltage("(location 0 0.1)"), voltage("(location 0 0.95)", "far")]))
        return out

    ours = simulate(cells("npleak"), catalogue, 15, threads=2, group_size=group_size)
    ref = simulate(cells("pas"), catalogue, 15, threads=2, group_size=group_size)
    assert len(ours) == 8
    assert max_abs(ours, ref) <= 1e-12  # measured 2.8e-14


def test_numpy_point_process_with_events_matches_expsyn(catalogue):
    """Point mechanism: events, weights 1000/area, three coalesced synapses on one CV."""

    def cell(mech: str) -> Cell:
        d = arbor.decor().set_property(Vm=-65 * U.mV)
        d.paint("(all)", arbor.density("pas"))
        for i in range(3):
            d.place("(location 0 0.5)", arbor.synapse(mech), f"s{i}")
        d.place("(location 0 0.1)", arbor.synapse(mech, {"tau": 5.0}), "s3")
        events = [arbor.event_generator(f"s{i}", 0.002 * (i + 1), arbor.explicit_schedule(
            [(2.0 + 3 * i) * U.ms, (9.0 + i) * U.ms])) for i in range(4)]
        return Cell(cable(), d, arbor.cv_policy_fixed_per_branch(5),
                    probes=[voltage("(location 0 0.5)")], events=events)

    ours = simulate([cell("npsyn")], catalogue, 20)
    ref = simulate([cell("expsyn")], catalogue, 20)
    assert np.ptp(ref[0, "v"][:, 1]) > 0.5
    assert max_abs(ours, ref) <= 1e-12  # measured 0
    # Arbor coalesced the three identical synapses: 2 instances, multiplicity 3 and 1
    assert SEEN["width"] == 2
    assert sorted(SEEN["multiplicity"].tolist()) == [1, 3]


# ---------------------------------------------------------------- JAX HH vs hh


def hh_cell(mech: str, n_cv: int) -> Cell:
    d = arbor.decor().set_property(Vm=-65 * U.mV)
    d.paint("(all)", arbor.density(mech))
    d.place("(location 0 0.5)", arbor.i_clamp(5 * U.ms, 30 * U.ms, 0.6 * U.nA))
    probes = [voltage("(location 0 0.5)"), voltage("(location 0 1)", "end"),
              Probe(arbor.cable_probe_ion_current_density("(location 0 0.5)", "na", "ina"), "ina")]
    return Cell(cable(100, 5), d, arbor.cv_policy_fixed_per_branch(n_cv), probes=probes)


@pytest.mark.parametrize("n_cv", [1, 20])
def test_jax_hh_matches_builtin_hh_while_spiking(catalogue, n_cv):
    ours = simulate([hh_cell("jaxhh", n_cv)], catalogue, 40)
    ref = simulate([hh_cell("hh", n_cv)], catalogue, 40)
    v = ref[0, "v"][:, 1]
    assert np.sum(np.diff((v > 0).astype(int)) == 1) >= 3  # measured 3 spikes
    assert max_abs({k: ours[k] for k in ours if k[1] != "ina"},
                   {k: ref[k] for k in ref if k[1] != "ina"}) <= 1e-9  # measured 3e-12 mV
    # the sodium current is booked on the ion as well (A/m², relative)
    ina, ina_ref = ours[0, "ina"][:, 1], ref[0, "ina"][:, 1]
    assert np.max(np.abs(ina - ina_ref)) <= 1e-8 * np.max(np.abs(ina_ref))


def test_jax_hh_two_threads_several_groups(catalogue):
    cells = [hh_cell("jaxhh", 10) for _ in range(3)]
    ours = simulate(cells, catalogue, 20, threads=2)
    ref = simulate([hh_cell("hh", 10) for _ in range(3)], catalogue, 20, threads=2)
    assert max_abs({k: v for k, v in ours.items() if k[1] != "ina"},
                   {k: v for k, v in ref.items() if k[1] != "ina"}) <= 1e-9


def test_jax_stateless_channel_in_single_cell_model(catalogue):
    def run(mech: arbor.density) -> np.ndarray:
        d = arbor.decor().set_property(Vm=-65 * U.mV)
        d.paint("(all)", mech)
        d.place("(location 0 0.5)", arbor.i_clamp(1 * U.ms, 5 * U.ms, 0.05 * U.nA))
        m = arbor.single_cell_model(arbor.cable_cell(cable(), d, arbor.label_dict(),
                                                     arbor.cv_policy_fixed_per_branch(4)))
        m.properties.catalogue = catalogue
        m.probe("voltage", "(location 0 0.5)", "v", frequency=40 * U.kHz)
        m.run(10 * U.ms, dt=0.025 * U.ms)
        return np.array(m.traces[0].value)

    ours = run(arbor.density("jaxpas", {"g": 0.002, "e": -50}))
    ref = run(arbor.density("pas/e=-50", {"g": 0.002}))
    assert np.max(np.abs(ours - ref)) <= 1e-12


# ---------------------------------------------------------------- errors


def test_exception_in_callback_is_a_python_error():
    def bad(m: pycat.MechView) -> None:
        raise ZeroDivisionError("on purpose")

    cat = pycat.catalogue([pycat.Mechanism("boom", compute_currents=bad)], base=arbor.default_catalogue())
    d = arbor.decor()
    d.paint("(all)", arbor.density("boom"))
    cell = Cell(cable(), d, arbor.cv_policy_fixed_per_branch(3), probes=[voltage("(location 0 0.5)")])
    with pytest.raises(RuntimeError, match="'boom' failed in compute_currents: ZeroDivisionError: on purpose"):
        simulate([cell], cat, 1, threads=2)
    err = pycat.last_error()
    assert isinstance(err, pycat.MechanismCallbackError)
    assert isinstance(err.original, ZeroDivisionError) and "on purpose" in err.trace
    # the process survives and Arbor keeps working
    leak = pycat.catalogue([leak_mechanism("leak_after")], base=arbor.default_catalogue())
    d = arbor.decor()
    d.paint("(all)", arbor.density("leak_after"))
    ok = simulate([Cell(cable(), d, arbor.cv_policy_single(), probes=[voltage("(location 0 0.5)")])], leak, 1)
    assert np.all(np.isfinite(ok[0, "v"][:, 1]))


def test_wrong_shape_is_a_python_error():
    def bad(m: pycat.MechView) -> None:
        m.add_current(np.zeros(m.width + 2))

    cat = pycat.catalogue([pycat.Mechanism("badshape", compute_currents=bad)])
    d = arbor.decor()
    d.paint("(all)", arbor.density("badshape"))
    cell = Cell(cable(), d, arbor.cv_policy_fixed_per_branch(4), probes=[voltage("(location 0 0.5)")])
    with pytest.raises(RuntimeError, match=r"current has shape \(6,\), expected \(4,\)"):
        simulate([cell], cat, 1)


def test_error_in_init_and_in_jax_channel():
    def bad_current(v, s, p, c):
        return {"nope": v}

    ch = pycat.channel.Channel("badjax", {"g": 1.0}, (), bad_current, lambda v, p, c: {},
                               update=lambda v, s, p, c, dt: {})
    cat = pycat.catalogue([jax_mechanism(ch)])
    d = arbor.decor()
    d.paint("(all)", arbor.density("badjax"))
    cell = Cell(cable(), d, arbor.cv_policy_single(), probes=[voltage("(location 0 0.5)")])
    with pytest.raises(RuntimeError, match="undeclared ion"):
        simulate([cell], cat, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="a b"), "bad mechanism name"),
    (dict(name="m", kind="junction"), "kind must be"),
    (dict(name="m", parameters={"x": 1}, states=["x"]), "names used twice"),
    (dict(name="m", parameters={"1x": 1}), "not a Python identifier"),
    (dict(name="m", apply_events=lambda m, e: None), "only point mechanisms"),
    (dict(name="m", init=3), "not callable"),
])
def test_declaration_errors(kwargs, match):
    with pytest.raises(pycat.PycatError, match=match):
        pycat.Mechanism(**kwargs)


def test_gradient_declaration_errors():
    with pytest.raises(pycat.PycatError, match="not a parameter of channel"):
        gradient_mechanism(hh(), ["gnabar", "nope"])
    with pytest.raises(pycat.PycatError, match="must sort before 'gradz_hub'"):
        gradient_mechanism(hh(), ["gnabar"], name="hhgrad")
    assert bindings_for(HH + ["pas.g"], "hh") == ["gnabar", "gkbar", "gl", None]


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCAT_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(pycat.PycatError, match="no C\\+\\+ compiler found"):
        shim_path()


def test_shim_is_cached_outside_the_repository():
    path = shim_path()
    assert path.is_file() and path.is_relative_to(cache_root())  # ~/.cache/gradgen/pycat or $PYCAT_CACHE
    assert not path.is_relative_to(Path(__file__).resolve().parents[2])


# ---------------------------------------------------------------- gradients


def _gradient_props(K: int, diff: float = 1e-9):
    def hook(props: arbor.cable_global_properties) -> None:
        for ion in gradient_ions(K):
            props.set_ion(ion, valence=1, int_con=0 * U.mM, ext_con=0 * U.mM, rev_pot=0 * U.mV,
                          diff=diff * U.m2 / U.s)
    return hook


def test_jax_hh_gradient_single_cv_matches_finite_differences_of_builtin_hh(make_model):
    """No diffusion on one CV: the derivative of Arbor's step is exact (measured 7e-9)."""
    model = make_model(["hh.mod"], HH)  # only its hub (gradz_hub) is used here
    cat = arbor.default_catalogue()
    cat.extend(arbor.load_catalogue(str(model.gradient_catalogue)), "")
    cat = pycat.catalogue([gradient_mechanism(hh(), bindings_for(HH, "hh"))], base=cat)
    defaults = {"gnabar": 0.12, "gkbar": 0.036, "gl": 0.0003}
    site = "(location 0 0.5)"

    def cell(grad: bool, values: dict | None = None) -> Cell:
        d = arbor.decor().set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
        if grad:
            d.paint("(all)", arbor.density("grad_jaxhh", {f"gg_w{k}": 1.0 for k in range(3)}))
            d.paint("(all)", arbor.density("gradz_hub", {"cm": 1.0}))
        else:
            d.paint("(all)", arbor.density("hh", values or {}))
        d.place(site, arbor.i_clamp(10 * U.ms, 30 * U.ms, 0.5 * U.nA))
        probes = [voltage(site)]
        if grad:
            probes += [state(site, "gradz_hub", f"u{k}", f"u{k}") for k in range(3)]
        return Cell(cable(20, 10), d, arbor.cv_policy_single(), probes=probes)

    grad = simulate([cell(True)], cat, 50, props_hook=_gradient_props(3))
    ref = simulate([cell(False)], cat, 50)
    v = ref[0, "v"][:, 1]
    assert np.sum(np.diff((v > 0).astype(int)) == 1) >= 2  # measured 4 spikes
    assert np.max(np.abs(grad[0, "v"][:, 1] - v)) <= 1e-9
    for k, name in enumerate(defaults):
        x, h = defaults[name], 1e-5 * defaults[name]
        plus = simulate([cell(False, {name: x + h})], cat, 50)[0, "v"][:, 1]
        minus = simulate([cell(False, {name: x - h})], cat, 50)[0, "v"][:, 1]
        fd = (plus - minus) / (2 * h)
        u = grad[0, f"u{k}"][:, 1]
        # measured 6.9e-9, 2.7e-8, 1.7e-9 (FD itself changes by 7e-7..3e-6 from step 1e-4 to 1e-5)
        assert np.linalg.norm(u - fd) / np.linalg.norm(fd) < 1e-6


def _axon_traces(model, spec, mechs: list[tuple[str, arbor.density]], sites, t_end, dt, extra_cat):
    """Like GradientModel.simulate, with our densities in place of the generated ones."""
    from gradgen.protocol import HUB_NAME
    from gradgen.targets.arbor.decor import membrane_of
    from gradgen.targets.arbor.sites import cv_centre

    membrane = membrane_of(spec, arbor.neuron_cable_properties())
    densities = mechs + [("(all)", arbor.density(HUB_NAME, {"cm": membrane.cm}))]
    decor = spec.decor.to_arbor(densities)
    built = spec.build(decor)
    K = len(model.params)
    centres = [cv_centre(built, s) for s in sites]
    probes = []
    for i, c in enumerate(centres):
        probes.append(voltage(c, f"v{i}"))
        probes += [state(c, HUB_NAME, f"u{k}", f"u{i}_{k}") for k in range(K)]
    cat = arbor.default_catalogue()
    cat.extend(arbor.load_catalogue(str(model.gradient_catalogue)), "")
    cat.extend(extra_cat, "")
    cell = Cell(spec.morphology, decor, spec.cv_policy, probes=probes, labels=spec.labels)
    diff = model.diffusivity(spec, built, membrane)
    out = simulate([cell], cat, t_end, dt, props_hook=_gradient_props(K, diff))
    v = np.stack([out[0, f"v{i}"][:, 1] for i in range(len(sites))])
    dv = np.stack([np.stack([out[0, f"u{i}_{k}"][:, 1] for k in range(K)]) for i in range(len(sites))])
    return v, dv


NEAR_FAR = ["(location 0 0)", "(location 0 1)"]


@pytest.fixture(scope="module")
def jax_grad_catalogue():
    return pycat.catalogue([gradient_mechanism(hh(), bindings_for(HH, "hh"))])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_jax_hh_gradient_agrees_with_generated_on_hh_axon(make_model, jax_grad_catalogue):
    """HH axon (500 µm, r 0.5 µm, 50 CVs): JAX-derived vs NMODL-generated dV/dθ."""
    from gradgen.checks.cells import cable_cell_spec

    model = make_model(["hh.mod"], HH, carrier="ion")  # the JAX mechanisms ride the ion carrier's hub
    t_end, dt = 100.0, 0.025
    spec = cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=t_end - 10)
    generated = model.simulate(spec, NEAR_FAR, t_end, dt)
    weights = {f"gg_w{k}": 1.0 for k in range(3)}
    v, dv = _axon_traces(model, spec, [("(all)", arbor.density("grad_jaxhh", weights))],
                         NEAR_FAR, t_end, dt, jax_grad_catalogue)
    assert np.sum(np.diff((v[0] > 0).astype(int)) == 1) >= 5  # measured 6 spikes
    assert np.max(np.abs(v - generated.v)) <= 1e-9  # measured 1.0e-11 mV
    for k in range(3):
        for s in range(2):
            # measured ≤ 4.4e-10 at 100 ms; ≤ 5e-13 at 50 ms, ≤ 2.1e-10 at 250 ms (17 spikes)
            assert _rel(dv[s, k], generated.dv[s, k]) < 1e-8


def test_generated_and_jax_gradient_mechanisms_mix_on_one_cell(make_model, jax_grad_catalogue):
    """Proximal half generated grad_hh, distal half grad_jaxhh, one hub: same as all-generated."""
    from gradgen.checks.cells import cable_cell_spec

    model = make_model(["hh.mod"], HH, carrier="ion")  # the JAX mechanisms ride the ion carrier's hub
    t_end, dt = 50.0, 0.025
    spec = cable_cell_spec(["hh"], stimulus_nA=0.1, t_off=t_end - 10)
    generated = model.simulate(spec, NEAR_FAR, t_end, dt)
    weights = {f"gg_w{k}": 1.0 for k in range(3)}
    mixed = [("(cable 0 0 0.5)", arbor.density("grad_hh", weights)),
             ("(cable 0 0.5 1)", arbor.density("grad_jaxhh", weights))]
    v, dv = _axon_traces(model, spec, mixed, NEAR_FAR, t_end, dt, jax_grad_catalogue)
    assert np.max(np.abs(v - generated.v)) <= 1e-9
    for k in range(3):
        for s in range(2):
            assert _rel(dv[s, k], generated.dv[s, k]) < 1e-8


def test_jax_hh_sees_reversal_potentials_that_change_every_step():
    """A numpy mechanism ramps [Na]i, nernst turns it into ena at the start of each step:
    the fused step's precomputed currents are stale then, and compute_currents notices."""

    def advance_state(m: pycat.MechView) -> None:
        m.s.t = m.s.t + m.dt

    def write_ions(m: pycat.MechView) -> None:
        ion = m.ions["na"]
        np.add.at(ion.xi, ion.index, m.weight * (10.0 + 2.0 * m.s.t))

    ramp = pycat.Mechanism("nairamp", states={"t": 0.0}, ions=[pycat.Ion("na", write_int=True)],
                           init=lambda m: m.s.__setattr__("t", 0.0),
                           advance_state=advance_state, write_ions=write_ions)
    cat = pycat.catalogue([ramp, jax_mechanism(hh(), name="jaxhh2")], base=arbor.default_catalogue())

    def cell(mech: str) -> Cell:
        d = arbor.decor().set_property(Vm=-65 * U.mV)
        d.set_ion("na", int_con=10 * U.mM, method="nernst/na")
        d.paint("(all)", arbor.density(mech))
        d.paint("(all)", arbor.density("nairamp"))
        d.place("(location 0 0.5)", arbor.i_clamp(2 * U.ms, 20 * U.ms, 0.6 * U.nA))
        return Cell(cable(100, 5), d, arbor.cv_policy_fixed_per_branch(3),
                    probes=[voltage("(location 0 0.5)"),
                            Probe(arbor.cable_probe_ion_reversal_potential("(location 0 0.5)", "na", "ena"), "ena")])

    ours = simulate([cell("jaxhh2")], cat, 25)
    ref = simulate([cell("hh")], cat, 25)
    ena = ref[0, "ena"][:, 1]
    assert abs(ena[-1] - ena[1]) > 10.0  # the ramp moves ena by tens of mV (measured 43)
    assert np.max(np.abs(ours[0, "v"][:, 1] - ref[0, "v"][:, 1])) <= 1e-9

