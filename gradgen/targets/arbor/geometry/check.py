"""Checks of the geometry transform, run by the runtime at start-up and by the tests.

- :func:`check_equivalence`: the transformed cell must produce the same voltages as the
  original (hh + pas, a current step), at mapped probe sites.
- :func:`mirror_error`: on a passive cable with no membrane current, Xd started from the same
  profile as V must relax exactly like V. On the transformed cell this is exact to rounding;
  on the untransformed cell it measures the gradient error the transform removes.
"""
from __future__ import annotations

import time
from typing import Literal, Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.targets.arbor.geometry.layout import (
    cable_expr,
    carrier_properties,
    cv_layout,
    join_regions,
)
from gradgen.targets.arbor.geometry.transform import (
    EquivalentGeometry,
    naive_carrier_paints,
)
from gradgen.targets.arbor.recipe import run_and_sample

__all__ = ["check_equivalence", "translation_noise_floor", "mirror_error"]


def _default_sites(geo: EquivalentGeometry, max_sites: int) -> list[tuple[int, float]]:
    """Midpoints of one-cable CVs (where their two halves meet), evenly thinned."""
    pieces = geo.pieces
    sites = [(h1.branch, h1.dist) for h1, h2 in zip(pieces, pieces[1:])
             if h1.half and h2.half and h1.cv == h2.cv]
    if len(sites) > max_sites:
        idx = np.unique(np.linspace(0, len(sites) - 1, max_sites).round().astype(int))
        sites = [sites[i] for i in idx]
    return sites


def check_equivalence(equivalent: EquivalentGeometry, t_end: float = 250.0, dt: float = 0.025,
                      *, sites: Sequence[tuple[int, float]] | None = None,
                      stimulus_site: str = "(root)", stimulus_nA: float = 0.2,
                      paints: Sequence[tuple[str, str]] = (("(all)", "hh"), ("(all)", "pas")),
                      max_sites: int = 64, site_map: Literal["axial", "area"] = "axial") -> dict:
    """Run the original and the transformed cell and compare V at mapped probe sites.

    Both cells get the density mechanisms ``paints`` ((region on the original, mechanism);
    default hh + pas everywhere, pas with g = 1e-4 S/cm²) and a current step at
    ``stimulus_site`` from 10 ms to t_end − 40 ms. ``sites`` are (branch, pos) on the
    original cell (default: midpoints of its CVs, at most ``max_sites``). The original
    morphology, labels and CV policy come from ``equivalent``. ``site_map`` chooses how the
    probe sites are mapped (``area`` exists to show why probes need ``axial``). Returns a
    dict with ``max_abs_dV_mV`` and the numbers behind it.
    """
    return _compare(equivalent, "equivalent", t_end, dt, sites, stimulus_site, stimulus_nA,
                    paints, max_sites, site_map)


def translation_noise_floor(equivalent: EquivalentGeometry, t_end: float = 250.0,
                            dt: float = 0.025, *, shift=(137.3, -41.9, 12.7), **kwargs) -> dict:
    """The same comparison between the original cell and a rigidly translated copy of it.

    Translation changes nothing but rounding in lengths and areas; with many spikes that
    rounding grows to 1e-7–1e-6 mV over 250 ms on C4A. A transformed cell whose
    ``max_abs_dV_mV`` is of this order is as identical as floating point allows.
    Keyword arguments are those of :func:`check_equivalence` (except ``site_map``).
    """
    args = dict(sites=None, stimulus_site="(root)", stimulus_nA=0.2,
                paints=(("(all)", "hh"), ("(all)", "pas")), max_sites=64)
    args.update(kwargs)
    return _compare(equivalent, "translated", t_end, dt, args["sites"], args["stimulus_site"],
                    args["stimulus_nA"], args["paints"], args["max_sites"], "axial",
                    shift=shift)


def _compare(equivalent, second, t_end, dt, sites, stimulus_site, stimulus_nA, paints,
             max_sites, site_map, shift=(0.0, 0.0, 0.0)) -> dict:
    if sites is None:
        sites = _default_sites(equivalent, max_sites)
    t_on, t_off = min(10.0, 0.2 * t_end), max(t_end - 40.0, 0.6 * t_end)
    cm = equivalent.cm_uF_cm2 * 0.01 * U.F / U.m2

    def build(new: bool):
        decor = arbor.decor()
        decor.set_property(Vm=-65 * U.mV, cm=cm, rL=equivalent.rL_ohm_cm * U.Ohm * U.cm)
        mapped = new and second == "equivalent"
        if mapped:
            equivalent.paint_axial(decor)
        else:
            for reg, rl in equivalent.rL_regions:
                decor.paint(reg, rL=rl * U.Ohm * U.cm)
        for reg, c in equivalent.cm_regions:
            decor.paint(equivalent.map_region(reg) if mapped else reg, cm=c * 0.01 * U.F / U.m2)
        for reg, mech in paints:
            region = equivalent.map_region(reg) if mapped else reg
            decor.paint(region, arbor.density("pas", g=1e-4) if mech == "pas"
                        else arbor.density(mech))
        stim = equivalent.map_locset(stimulus_site) if mapped else stimulus_site
        decor.place(stim, arbor.i_clamp(t_on * U.ms, (t_off - t_on) * U.ms,
                                        stimulus_nA * U.nA))
        probes = []
        for k, (b, x) in enumerate(sites):
            if mapped:
                b, x = equivalent.map_location(b, x, site_map)
            probes.append((arbor.cable_probe_membrane_voltage(f"(location {b} {x!r})", f"v{k}"),
                           f"v{k}"))
        if mapped:
            return equivalent.cable_cell(decor), probes
        morph = equivalent.original_morphology
        if new:  # translated copy
            tree = morph.to_segment_tree().apply_isometry(arbor.isometry.translate(*shift))
            morph = arbor.morphology(tree)
        return arbor.cable_cell(morph, decor, equivalent.original_labels,
                                equivalent.original_cv_policy), probes

    results = {}
    for new in (False, True):
        t0 = time.perf_counter()
        cell, probes = build(new)
        out = run_and_sample([cell], [probes], carrier_properties(), t_end, dt)
        v = np.array([out[0, f"v{k}"][1] for k in range(len(sites))])
        # upward crossings of -10 mV at the first site (spikes)
        crossings = int(np.sum((v[0, 1:] >= -10.0) & (v[0, :-1] < -10.0)))
        results[new] = (v, crossings, time.perf_counter() - t0)
    v0, s0, w0 = results[False]
    v1, s1, w1 = results[True]
    dv = np.abs(v1 - v0)
    return {
        "max_abs_dV_mV": float(dv.max()),
        "worst_site": tuple(sites[int(np.argmax(dv.max(axis=1)))]),
        "n_sites": len(sites),
        "spikes_original_site0": s0,
        "spikes_equivalent_site0": s1,
        "v_range_mV": (float(v0.min()), float(v0.max())),
        "t_end_ms": t_end,
        "dt_ms": dt,
        "wall_original_s": w0,
        "wall_equivalent_s": w1,
    }


def _cv_probe_location(cabs) -> tuple[int, float]:
    """A point whose interpolated V is exactly the CV's value."""
    b, x0, x1 = cabs[0]
    if len(cabs) == 1:
        return b, 0.5 * (x0 + x1)
    return (b, x1) if x1 >= 1.0 else (b, x0)


def mirror_error(equivalent: EquivalentGeometry, *, transformed: bool = True,
                 t_end: float = 20.0, dt: float = 0.025, seed: int = 0, ion: str = "x",
                 profile: Literal["random", "root"] = "random",
                 init_mechanism: str | None = None, catalogue=None) -> dict:
    """Relax a random V profile and the same Xd profile on a membrane without channels.

    ``transformed``: use the equivalent cell with its rL and D paints (should be exact), or
    the original cell with :func:`naive_carrier_paints` (the error the transform removes).
    ``profile``: uniform random in [-1, 1] per CV, or 1 on the root CV and 0 elsewhere (a
    somatic perturbation, where the untransformed error is largest).
    ``init_mechanism``: a density mechanism from ``catalogue`` with RANGE ``x0`` that sets
    ``xd = x0`` in INITIAL; without it Xd starts from painted ``int_con``.
    Returns ``max_rel_error`` = max over time and CVs of |(V − V0) − Xd| / max|profile|.
    """
    geo = equivalent
    if transformed:
        morph, labels, policy = geo.morphology, geo.labels, geo.cv_policy
        d_paints = list(geo.diffusivity_paints)
        d_default = geo.default_diffusivity
    else:
        morph, labels, policy = geo.original_morphology, geo.original_labels, geo.original_cv_policy
        d_paints = naive_carrier_paints(morph, labels, policy, geo.rL_ohm_cm, geo.cm_uF_cm2)
        d_default = float(np.median([d for _, d in d_paints]))
    layout = cv_layout(arbor.cable_cell(morph, arbor.decor(), labels, policy))
    # CVs with membrane: positive total length
    live = [i for i, cabs in enumerate(layout.cables) if sum(c[2] - c[1] for c in cabs) > 0]
    rng = np.random.default_rng(seed)
    if profile == "random":
        init = rng.uniform(-1.0, 1.0, len(live))
    elif profile == "root":
        init = np.zeros(len(live))
        init[0] = 1.0
    else:
        raise GradgenError(f"mirror_error: unknown profile {profile!r}")
    v_rest = -65.0
    decor = arbor.decor()
    decor.set_property(Vm=v_rest * U.mV, cm=geo.cm_uF_cm2 * 0.01 * U.F / U.m2,
                       rL=geo.rL_ohm_cm * U.Ohm * U.cm)
    if transformed:
        geo.paint_axial(decor)
    for reg, c in geo.cm_regions:
        decor.paint(geo.map_region(reg) if transformed else reg, cm=c * 0.01 * U.F / U.m2)
    for reg, d in d_paints:
        decor.paint(reg, ion=ion, diff=d * U.m2 / U.s)
    probes = []
    for k, (i, p) in enumerate(zip(live, init)):
        reg = join_regions([cable_expr(*c) for c in layout.cables[i]])
        decor.paint(reg, Vm=(v_rest + p) * U.mV)
        if init_mechanism is None:
            decor.paint(reg, ion=ion, int_con=p * U.mM)
        else:
            decor.paint(reg, arbor.density(init_mechanism, x0=float(p)))
        b, x = _cv_probe_location(layout.cables[i])
        loc = f"(location {b} {x!r})"
        probes += [(arbor.cable_probe_membrane_voltage(loc, f"v{k}"), f"v{k}"),
                   (arbor.cable_probe_ion_diff_concentration(loc, ion, f"x{k}"), f"x{k}")]
    cell = arbor.cable_cell(morph, decor, labels, policy)
    props = carrier_properties(ion, d_default)
    if catalogue is not None:
        props.catalogue.extend(catalogue, "")
    t0 = time.perf_counter()
    out = run_and_sample([cell], [probes], props, t_end, dt)
    wall = time.perf_counter() - t0
    v = np.array([out[0, f"v{k}"][1] for k in range(len(live))]) - v_rest
    x = np.array([out[0, f"x{k}"][1] for k in range(len(live))])
    if v.shape != x.shape or v.size == 0:
        raise GradgenError("mirror_error: probes returned inconsistent data")
    err = np.abs(v - x)
    # how far the profile relaxed: the check is meaningless if nothing moved
    moved = float(np.max(np.abs(v[:, -1] - v[:, 0])))
    return {
        "max_rel_error": float(err.max() / np.max(np.abs(init))),
        "relaxed_by": moved,
        "n_cvs": len(live),
        "transformed": transformed,
        "t_end_ms": t_end,
        "dt_ms": dt,
        "wall_s": wall,
    }
