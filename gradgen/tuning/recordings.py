"""Target traces from files: NPZ arrays, NWB recordings (``pynwb``) and ABF recordings (``pyabf``).

A recording is sampled at its own rate and starts at its own time; the loss compares the
model with it at the protocol's sample times. :func:`read_target` reads the file, converts
time to ms and voltage to mV by the units the file declares (a current or an unknown unit
is refused: a current-clamp target must be a membrane potential), and interpolates linearly
at ``start + protocol.times()``. ``start`` (ms, default 0) is the recording time that is the
simulation's t = 0, so a recording with a pre-stimulus baseline can be aligned with the
protocol. Samples must cover every protocol time: extrapolating a recording would invent data.

An NPZ (arrays ``t`` in ms and ``v`` in mV, as ``gradgen tune`` writes ``target.npz``) must
already be sampled at the protocol's times, as before recordings were supported.

NWB: ``series`` names a time series in the file's acquisition (for example a
``CurrentClampSeries``); without it the file must hold exactly one series in volts. ABF:
``sweep`` and ``channel`` (both 0 by default). pynwb and pyabf are the optional extra
``recordings``; a missing one is a one-line error that names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradgen.errors import GradgenError
from gradgen.extras import require

#: declared voltage unit -> factor to mV (NWB writes SI names, ABF short symbols)
VOLTAGE_UNITS = {"volts": 1e3, "volt": 1e3, "v": 1e3, "millivolts": 1.0, "millivolt": 1.0,
                 "mv": 1.0}
RECORDING_SUFFIXES = (".nwb", ".abf")


@dataclass(frozen=True)
class TargetFile:
    """A target trace's file and, for a recording, which trace in it and its alignment."""

    path: Path
    series: str | None = None  # NWB: acquisition series name
    sweep: int = 0  # ABF
    channel: int = 0  # ABF
    start: float = 0.0  # ms: the recording time at the simulation's t = 0

    @property
    def is_recording(self) -> bool:
        return self.path.suffix.lower() in RECORDING_SUFFIXES


@dataclass(frozen=True)
class Trace:
    """Samples of a membrane potential: t in ms, v in mV."""

    t: np.ndarray
    v: np.ndarray


def read_trace(target: TargetFile) -> Trace:
    """The recorded trace in ms and mV (a GradgenError names the file and what is wrong)."""
    suffix = target.path.suffix.lower()
    if suffix == ".nwb":
        return _read_nwb(target)
    if suffix == ".abf":
        return _read_abf(target)
    raise GradgenError(f"{target.path}: a recording must be an NWB (.nwb) or ABF (.abf) file")


def read_target(target: TargetFile, times: np.ndarray, sample_dt: float, t_end: float) -> np.ndarray:
    """The target in mV at the protocol's sample ``times`` (ms)."""
    if not target.is_recording:
        return _read_npz(target.path, times, sample_dt, t_end)
    trace = read_trace(target)
    wanted = target.start + times
    if trace.t.size < 2 or wanted[0] < trace.t[0] or wanted[-1] > trace.t[-1]:
        covered = f"{trace.t[0]:g}–{trace.t[-1]:g} ms" if trace.t.size else "no samples"
        raise GradgenError(f"{target.path}: the recording covers {covered}; the protocol needs "
                           f"{wanted[0]:g}–{wanted[-1]:g} ms",
                           hint="shorten t_end or set [target] start (ms of the recording at t = 0)")
    if not np.all(np.isfinite(trace.v)):
        raise GradgenError(f"{target.path}: the recorded voltage has non-finite samples")
    return np.interp(wanted, trace.t, trace.v)


def _read_npz(path: Path, times: np.ndarray, sample_dt: float, t_end: float) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            t, v = np.asarray(data["t"], float), np.asarray(data["v"], float)
    except (OSError, KeyError, ValueError) as error:
        raise GradgenError(f"{path}: cannot read a target trace ({error})",
                           hint="write it with numpy.savez(path, t=..., v=...)") from None
    if t.shape != times.shape or v.shape != times.shape or not np.allclose(t, times):
        raise GradgenError(f"{path}: target samples do not match the protocol",
                           hint=f"sample every {sample_dt} ms from 0 to {t_end} ms (exclusive)")
    return v


def _to_mV(path: Path, unit: str, what: str) -> float:
    factor = VOLTAGE_UNITS.get(unit.strip().lower())
    if factor is None:
        raise GradgenError(f"{path}: {what} is in '{unit}', not a voltage",
                           hint="the target is a membrane potential (volts or mV): "
                                "choose the current-clamp voltage trace")
    return factor


def _read_nwb(target: TargetFile) -> Trace:
    pynwb = require("pynwb", "recordings", "reading an NWB target")
    path = target.path
    try:
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            acquisition = io.read().acquisition
            name = target.series
            if name is None:
                voltages = [n for n, s in acquisition.items()
                            if getattr(s, "unit", "").strip().lower() in VOLTAGE_UNITS]
                if len(voltages) != 1:
                    raise GradgenError(f"{path}: {len(voltages)} voltage series in the acquisition; "
                                       "name one with [target] series",
                                       hint="series: " + (", ".join(acquisition) or "none"))
                name = voltages[0]
            if name not in acquisition:
                raise GradgenError(f"{path}: no series '{name}' in the acquisition",
                                   hint="series: " + (", ".join(acquisition) or "none"))
            series = acquisition[name]
            factor = _to_mV(path, series.unit, f"series '{name}'")
            data = np.asarray(series.data[:], float) * series.conversion + series.offset
            if data.ndim != 1:
                raise GradgenError(f"{path}: series '{name}' is not one trace (shape {data.shape})")
            if series.timestamps is not None:
                t = np.asarray(series.timestamps[:], float) * 1e3
            else:
                t = (series.starting_time + np.arange(data.size) / series.rate) * 1e3
    except GradgenError:
        raise
    except Exception as error:  # h5py/hdmf raise many types for a file that is not NWB
        raise GradgenError(f"{path}: cannot read it as NWB ({type(error).__name__}: {error})") from None
    return Trace(t, data * factor)


def _read_abf(target: TargetFile) -> Trace:
    pyabf = require("pyabf", "recordings", "reading an ABF target")
    path = target.path
    try:
        abf = pyabf.ABF(str(path))
    except Exception as error:  # pyabf raises many types for a file that is not ABF
        raise GradgenError(f"{path}: cannot read it as ABF ({type(error).__name__}: {error})") from None
    if not 0 <= target.sweep < abf.sweepCount:
        raise GradgenError(f"{path}: no sweep {target.sweep} (the file has {abf.sweepCount})")
    if not 0 <= target.channel < abf.channelCount:
        raise GradgenError(f"{path}: no channel {target.channel} (the file has {abf.channelCount})")
    abf.setSweep(target.sweep, channel=target.channel)
    factor = _to_mV(path, abf.sweepUnitsY, f"sweep {target.sweep}, channel {target.channel}")
    return Trace(np.asarray(abf.sweepX, float) * 1e3, np.asarray(abf.sweepY, float) * factor)
