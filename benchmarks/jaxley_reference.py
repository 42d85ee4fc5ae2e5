"""Jaxley reference for the gradgen benchmark (float64, CPU).

Builds the two benchmark cells in Jaxley and measures, in the same process,

* forward simulation time,
* reverse-mode gradient of the voltage MSE loss w.r.t. the three shared HH
  conductances (gNa, gK, gLeak), evaluated at ``scale`` x the true values,
* compile times (measured separately, via ``jax.jit(...).lower(...).compile()``),
* the peak resident-memory increase of one gradient evaluation.

Cells (see ``CELLS``):

``uniform_cable``
    one unbranched cable, r 0.5 um, L 500 um, 50 compartments; 0.1 nA into the
    x=0 compartment from 10 ms to t_end - 10 ms; sites: first and last compartment.
``hh_axon``
    soma (1 compartment, L 20 um, r 10 um) + axon (10 compartments of L 40 um,
    r 0.5 um); 0.2 nA into the soma from 10 ms to t_end - 40 ms; sites: soma and
    the axon tip.

Both: HH everywhere (gNa 0.12, gK 0.036, gLeak 0.0003 S/cm^2, eNa 50, eK -77,
eLeak -54.3 mV), cm 1 uF/cm^2, rL 100 Ohm cm, V0 -65 mV with the gates at their
steady state for V0, backward Euler (Jaxley's default), dt 0.025 ms.

Loss: ``mean((V - V_target)**2)`` over both recorded sites and all samples
``t = 0, dt, ..., t_end`` (``round(t_end/dt) + 1`` samples per site), where
``V_target`` is simulated with the true parameters.

Importing this module switches JAX to float64 globally (``jax_enable_x64``).

Usage::

    from benchmarks import jaxley_reference as jr   # or load the file by path
    r = jr.loss_and_grad("hh_axon", 1000.0)
    tr = jr.simulate("hh_axon", 250.0)              # numpy traces for comparison
    jr.count_spikes(tr["v"][0])

Run ``python benchmarks/jaxley_reference.py`` for the table at 250 and 1000 ms.
"""

from __future__ import annotations

# float64 must be switched on before any array is created.
try:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jaxley as jx
    from jaxley.channels import HH
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "benchmarks/jaxley_reference.py needs jaxley (and jax). Install the benchmark "
        "extra with:  pip install -e '.[bench]'   (original error: %s)" % exc
    ) from exc

import contextlib
import gc
import io
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

PARAM_NAMES = ("gNa", "gK", "gLeak")
TRUE_PARAMS = {"gNa": 0.12, "gK": 0.036, "gLeak": 0.0003}  # S/cm^2
REVERSALS = {"eNa": 50.0, "eK": -77.0, "eLeak": -54.3}  # mV
CM = 1.0  # uF/cm^2
RL = 100.0  # Ohm cm
V0 = -65.0  # mV

# Stimulus defaults: amplitude (nA), onset (ms), and how long before t_end it stops.
CELLS = {
    "uniform_cable": {"amp": 0.1, "t_on": 10.0, "stop_before_end": 10.0},
    "hh_axon": {"amp": 0.2, "t_on": 10.0, "stop_before_end": 40.0},
}


def _quiet(fn, *args, **kwargs):
    """Call a Jaxley builder without its 'Added 1 recordings' chatter."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _check_name(name: str) -> None:
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(CELLS)}")


def build_cell(name: str):
    """Return a ``jx.Cell`` for ``name`` with HH, initial state and recordings set.

    The recordings are, in this order, ``[stimulated site, far site]``:
    cable compartment 0 (x=0) and 49 (x=1), or the soma and the last axon
    compartment. The three conductances are made trainable, each as a single
    value shared by all compartments. No stimulus is attached (see
    :func:`make_problem`); the stimulated compartment is ``cell.branch(0).comp(0)``.
    """
    _check_name(name)
    comp = jx.Compartment()
    if name == "uniform_cable":
        cell = jx.Cell([jx.Branch(comp, ncomp=50)], parents=[-1])
        cell.set("length", 500.0 / 50)  # Jaxley's "length" is per compartment
        cell.set("radius", 0.5)
        far = cell.branch(0).comp(49)
    else:
        soma = jx.Branch(comp, ncomp=1)
        axon = jx.Branch(comp, ncomp=10)
        cell = jx.Cell([soma, axon], parents=[-1, 0])
        cell.branch(0).set("length", 20.0)
        cell.branch(0).set("radius", 10.0)
        cell.branch(1).set("length", 40.0)
        cell.branch(1).set("radius", 0.5)
        far = cell.branch(1).comp(9)
    cell.set("capacitance", CM)
    cell.set("axial_resistivity", RL)
    cell.insert(HH())
    for p, val in TRUE_PARAMS.items():
        cell.set(f"HH_{p}", val)
    for p, val in REVERSALS.items():
        cell.set(f"HH_{p}", val)
    cell.set("v", V0)
    cell.init_states()  # gates at steady state for V0 (as Arbor's hh does)
    _quiet(cell.branch(0).comp(0).record, "v")
    _quiet(far.record, "v")
    for p in PARAM_NAMES:
        cell.make_trainable(f"HH_{p}", verbose=False)
    return cell


def n_steps(t_end: float, dt: float) -> int:
    n = int(round(t_end / dt))
    if abs(n * dt - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"t_end={t_end} is not a multiple of dt={dt}")
    return n


def stimulus(
    name: str,
    t_end: float,
    dt: float = 0.025,
    amp: Optional[float] = None,
    t_on: Optional[float] = None,
    t_off: Optional[float] = None,
) -> np.ndarray:
    """Injected current (nA) per time step, length ``n_steps(t_end, dt)``.

    Entry ``k`` is the current applied during the step from ``k*dt`` to
    ``(k+1)*dt``; it is ``amp`` when ``t_on <= k*dt < t_off`` (up to rounding to the
    step grid), else 0. Defaults come from ``CELLS[name]``.
    """
    _check_name(name)
    d = CELLS[name]
    amp = d["amp"] if amp is None else amp
    t_on = d["t_on"] if t_on is None else t_on
    t_off = t_end - d["stop_before_end"] if t_off is None else t_off
    n = n_steps(t_end, dt)
    i = np.zeros(n)
    k0 = max(0, int(round(t_on / dt)))
    k1 = min(n, int(round(t_off / dt)))
    if k1 > k0:
        i[k0:k1] = amp
    return i


def _to_jaxley_params(theta) -> list:
    return [{f"HH_{p}": theta[i : i + 1]} for i, p in enumerate(PARAM_NAMES)]


@dataclass
class Problem:
    """Everything needed to simulate / differentiate one (cell, t_end) setting."""

    name: str
    t_end: float
    dt: float
    cell: object
    theta_true: jnp.ndarray  # (3,) absolute gNa, gK, gLeak
    theta_eval: jnp.ndarray  # theta_true * scale
    v_target: jnp.ndarray  # (2, n+1)
    simulate: Callable  # theta -> V (2, n+1), not jitted
    loss: Callable  # theta -> scalar, not jitted
    checkpoint_lengths: Optional[Sequence[int]]
    forward_compiled: Callable  # AOT-compiled simulate (theta -> V)
    forward_compile_s: float  # trace + lower + compile time of simulate


def default_checkpoint_lengths(t_end: float, dt: float = 0.025) -> list:
    """Two-level checkpointing with about sqrt(n) steps per level."""
    n = n_steps(t_end, dt)
    a = int(math.ceil(math.sqrt(n)))
    b = int(math.ceil(n / a))
    return [a, b]


def make_problem(
    name: str,
    t_end: float,
    dt: float = 0.025,
    scale: float = 1.1,
    amp: Optional[float] = None,
    t_on: Optional[float] = None,
    t_off: Optional[float] = None,
    checkpoint_lengths: Optional[Sequence[int]] = None,
) -> Problem:
    """Build the cell, attach the stimulus, and compute the target trace."""
    cell = build_cell(name)
    cur = stimulus(name, t_end, dt, amp=amp, t_on=t_on, t_off=t_off)
    _quiet(cell.branch(0).comp(0).stimulate, jnp.asarray(cur))
    ckpt = list(checkpoint_lengths) if checkpoint_lengths else None

    def simulate_fn(theta):
        return jx.integrate(
            cell,
            params=_to_jaxley_params(theta),
            delta_t=dt,
            checkpoint_lengths=ckpt,
        )

    theta_true = jnp.asarray([TRUE_PARAMS[p] for p in PARAM_NAMES], dtype=jnp.float64)
    t0 = time.perf_counter()
    fwd = jax.jit(simulate_fn).lower(theta_true).compile()
    fwd_compile_s = time.perf_counter() - t0
    v_target = fwd(theta_true)
    v_target.block_until_ready()
    expected = (2, n_steps(t_end, dt) + 1)
    if v_target.shape != expected:
        raise RuntimeError(f"Jaxley returned {v_target.shape}, expected {expected}")

    def loss_fn(theta):
        return jnp.mean((simulate_fn(theta) - v_target) ** 2)

    return Problem(
        name=name,
        t_end=t_end,
        dt=dt,
        cell=cell,
        theta_true=theta_true,
        theta_eval=theta_true * scale,
        v_target=v_target,
        simulate=simulate_fn,
        loss=loss_fn,
        checkpoint_lengths=ckpt,
        forward_compiled=fwd,
        forward_compile_s=fwd_compile_s,
    )


def simulate(
    name: str,
    t_end: float,
    dt: float = 0.025,
    scale: float = 1.0,
    amp: Optional[float] = None,
    t_on: Optional[float] = None,
    t_off: Optional[float] = None,
) -> dict:
    """Voltage traces as numpy arrays, for comparison with Arbor.

    Returns ``{"t": (n+1,), "v": (2, n+1), "sites": [..], "current": (n,)}`` with the
    parameters at ``scale`` x the true values (``scale=1`` = the target trace).
    ``v[0]`` is the stimulated site, ``v[1]`` the far site; ``v[:, 0]`` is t=0.
    """
    prob = make_problem(name, t_end, dt, scale=scale, amp=amp, t_on=t_on, t_off=t_off)
    if scale == 1.0:
        v = prob.v_target
    else:
        v = prob.forward_compiled(prob.theta_eval)
    sites = (
        ["cable x=0 (comp 0)", "cable x=1 (comp 49)"]
        if name == "uniform_cable"
        else ["soma", "axon tip (comp 9)"]
    )
    n = n_steps(t_end, dt)
    return {
        "t": np.arange(n + 1) * dt,
        "v": np.asarray(v),
        "sites": sites,
        "current": stimulus(name, t_end, dt, amp=amp, t_on=t_on, t_off=t_off),
    }


def count_spikes(v: np.ndarray, threshold: float = 0.0) -> int:
    """Number of upward crossings of ``threshold`` (mV) in a 1-D trace."""
    v = np.asarray(v)
    return int(np.count_nonzero((v[:-1] < threshold) & (v[1:] >= threshold)))


# --- memory -----------------------------------------------------------------


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so that RSS left over from
    earlier runs in this process does not hide the next run's peak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_delta_mb(fn: Callable[[], object]) -> float:
    """Peak RSS increase (MB) while running ``fn()`` once, over the RSS just before.

    Freed heap is trimmed first (glibc ``malloc_trim``). Uses VmHWM reset via /proc/self/clear_refs; falls back to sampling VmRSS every
    2 ms from a thread (which can miss very short peaks).
    """
    gc.collect()
    _malloc_trim()
    base = _status_kb("VmRSS")
    if base is None:
        return float("nan")
    if _reset_hwm() and (_status_kb("VmHWM") or 0) <= base + 1024:
        fn()
        peak = _status_kb("VmHWM")
    else:
        peak = base
        stop = threading.Event()

        def sample():
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _status_kb("VmRSS") or 0)
                time.sleep(0.002)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            fn()
        finally:
            stop.set()
            th.join()
        peak = max(peak, _status_kb("VmRSS") or 0)
    return (peak - base) / 1024.0


# --- measurement --------------------------------------------------------------


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def loss_and_grad(
    name: str,
    t_end: float,
    dt: float = 0.025,
    scale: float = 1.1,
    repeats: int = 3,
    amp: Optional[float] = None,
    t_on: Optional[float] = None,
    t_off: Optional[float] = None,
    checkpoint_lengths: Optional[Sequence[int]] = None,
    spike_threshold: float = 0.0,
) -> dict:
    """Loss, reverse-mode gradient and timings for one cell and duration.

    Returns a dict with

    * ``loss``: MSE (mV^2) at ``scale`` x the true parameters,
    * ``grad``: ``{"gNa", "gK", "gLeak"}`` = dLoss/dg (mV^2 per S/cm^2),
    * ``grad_scaled``: the same times the parameter value (dLoss/dlog g),
    * ``forward_s`` / ``grad_s``: median wall time of ``repeats`` compiled runs,
    * ``forward_compile_s`` / ``grad_compile_s``: ``lower().compile()`` time,
    * ``peak_rss_delta_mb``: peak RSS increase during one gradient run,
    * ``spikes_target`` / ``spikes_eval``: spikes per recorded site (true / scaled
      parameters), ``n_steps``, ``theta``, ``jaxley_version``, ``jax_version``.
    """
    prob = make_problem(
        name, t_end, dt, scale=scale, amp=amp, t_on=t_on, t_off=t_off,
        checkpoint_lengths=checkpoint_lengths,
    )
    theta = prob.theta_eval

    fwd = prob.forward_compiled
    fwd_compile = prob.forward_compile_s
    v_eval = fwd(theta)
    v_eval.block_until_ready()
    forward_s = _median_time(lambda: fwd(theta), max(repeats, 3))

    t0 = time.perf_counter()
    vg = jax.jit(jax.value_and_grad(prob.loss)).lower(theta).compile()
    grad_compile = time.perf_counter() - t0

    out = {}

    def one_grad():
        out["lg"] = jax.block_until_ready(vg(theta))

    mem = peak_rss_delta_mb(one_grad)
    loss, g = out["lg"]
    grad_s = _median_time(lambda: vg(theta), repeats)

    g = np.asarray(g)
    th = np.asarray(theta)
    vt = np.asarray(prob.v_target)
    ve = np.asarray(v_eval)
    return {
        "cell": name,
        "t_end": t_end,
        "dt": dt,
        "n_steps": n_steps(t_end, dt),
        "scale": scale,
        "theta": dict(zip(PARAM_NAMES, th.tolist())),
        "loss": float(loss),
        "grad": dict(zip(PARAM_NAMES, g.tolist())),
        "grad_scaled": dict(zip(PARAM_NAMES, (g * th).tolist())),
        "forward_s": forward_s,
        "grad_s": grad_s,
        "forward_compile_s": fwd_compile,
        "grad_compile_s": grad_compile,
        "peak_rss_delta_mb": mem,
        "spikes_target": [count_spikes(v, spike_threshold) for v in vt],
        "spikes_eval": [count_spikes(v, spike_threshold) for v in ve],
        "checkpoint_lengths": prob.checkpoint_lengths,
        "jaxley_version": jx.__version__,
        "jax_version": jax.__version__,
    }


def fd_check(
    name: str,
    t_end: float,
    dt: float = 0.025,
    scale: float = 1.1,
    rel_step: float = 1e-5,
    **stim,
) -> dict:
    """Reverse-mode gradient vs central finite differences of the same Jaxley loss.

    Compares the theta-scaled gradients ``g_i * theta_i``; the FD step is
    ``theta_i * rel_step``. Returns ``{"ad", "fd", "rel_err"}`` with
    ``rel_err = |ad - fd| / |fd|`` (2-norms), plus ``loss`` and ``v_target``
    (numpy, the true-parameter traces).
    """
    prob = make_problem(name, t_end, dt, scale=scale, **stim)
    theta = prob.theta_eval
    v_t = prob.v_target
    fwd = prob.forward_compiled

    def loss_j(th):  # the same loss, through the compiled forward
        return jnp.mean((fwd(th) - v_t) ** 2)

    _, g = jax.jit(jax.value_and_grad(prob.loss))(theta)
    ad = np.asarray(g) * np.asarray(theta)
    fd = np.zeros(len(PARAM_NAMES))
    for i in range(len(PARAM_NAMES)):
        e = jnp.zeros(len(PARAM_NAMES)).at[i].set(rel_step)
        lp = float(loss_j(theta * (1.0 + e)))
        lm = float(loss_j(theta * (1.0 - e)))
        fd[i] = (lp - lm) / (2.0 * rel_step)
    rel = float(np.linalg.norm(ad - fd) / np.linalg.norm(fd))
    return {
        "ad": ad,
        "fd": fd,
        "rel_err": rel,
        "loss": float(loss_j(theta)),
        "v_target": np.asarray(prob.v_target),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t-end", type=float, nargs="+", default=[250.0, 1000.0])
    ap.add_argument("--cells", nargs="+", default=list(CELLS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", action="store_true",
                    help="also measure with two-level gradient checkpointing")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    args = ap.parse_args(argv)
    results = []

    print(f"jaxley {jx.__version__}, jax {jax.__version__}, float64, "
          f"{jax.devices()[0].platform}, {os.cpu_count()} cpus")
    hdr = (f"{'cell':<14} {'t_end':>6} {'ckpt':>4} {'fwd_s':>7} {'fwd_cmp':>7} "
           f"{'grad_s':>7} {'grad_cmp':>8} {'mem_MB':>7} {'loss':>10} "
           f"{'dL/dgNa':>11} {'dL/dgK':>11} {'dL/dgLeak':>11} spikes")
    print(hdr)
    for name in args.cells:
        for t_end in args.t_end:
            variants = [None]
            if args.checkpoint:
                variants.append(default_checkpoint_lengths(t_end))
            for ck in variants:
                r = loss_and_grad(name, t_end, repeats=args.repeats,
                                  checkpoint_lengths=ck)
                results.append(r)
                g = r["grad"]
                print(f"{name:<14} {t_end:>6.0f} {'yes' if ck else 'no':>4} "
                      f"{r['forward_s']:>7.3f} {r['forward_compile_s']:>7.2f} "
                      f"{r['grad_s']:>7.3f} {r['grad_compile_s']:>8.2f} "
                      f"{r['peak_rss_delta_mb']:>7.0f} {r['loss']:>10.4g} "
                      f"{g['gNa']:>11.4g} {g['gK']:>11.4g} {g['gLeak']:>11.4g} "
                      f"{r['spikes_target']}", flush=True)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
