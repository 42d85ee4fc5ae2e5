"""Targets read from recordings: NWB files written by pynwb and ABF files written by pyabf
in the test itself, resampled to the protocol's sample times; a tuning run on a recorded
target equals the run on the same trace made from known parameters; config errors (missing
file, missing series, wrong units, a recording too short) are exit 2 with file:line:col.
pynwb and pyabf are the ``recordings`` extra (in ``dev``); without one its tests skip."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from test_least_squares import LOG_BASE, PROTOCOLS
from test_tune import write

from gradgen.cli import main
from gradgen.errors import GradgenError
from gradgen.tuning.config import load_config
from gradgen.tuning.recordings import TargetFile, read_target

PERIOD_MS = 50.0


def wave(t_ms: np.ndarray) -> np.ndarray:
    """A smooth membrane-potential-like test signal (mV)."""
    return -65.0 + 10.0 * np.sin(2 * np.pi * t_ms / PERIOD_MS)


def write_nwb(path: Path, series: dict[str, tuple[np.ndarray, float, float, str]]) -> Path:
    """An NWB file with ``name -> (data, rate in Hz, starting time in s, unit)`` in its
    acquisition: CurrentClampSeries for volts, plain TimeSeries otherwise."""
    pynwb = pytest.importorskip("pynwb")
    from pynwb.icephys import CurrentClampSeries

    nwb = pynwb.NWBFile(session_description="gradgen test", identifier="t",
                        session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="amplifier")
    electrode = nwb.create_icephys_electrode(name="e0", description="soma", device=device)
    for name, (data, rate, start, unit) in series.items():
        if unit == "volts":
            nwb.add_acquisition(CurrentClampSeries(name=name, data=data, electrode=electrode, gain=1.0,
                                                   rate=rate, starting_time=start))
        else:
            nwb.add_acquisition(pynwb.TimeSeries(name=name, data=data, unit=unit, rate=rate,
                                                 starting_time=start))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def write_abf(path: Path, sweeps_mV: np.ndarray, rate_hz: float, unit: str = "mV") -> Path:
    pytest.importorskip("pyabf")
    from pyabf.abfWriter import writeABF1

    writeABF1(np.asarray(sweeps_mV, float), str(path), rate_hz, units=unit)
    return path


def test_nwb_is_resampled_to_the_protocol_times(tmp_path):
    """20 kHz in volts, starting 10 ms before the recording's own zero, read at 1 ms steps from
    start = 0.025 ms (between two samples, so interpolation is exercised). Linear
    interpolation errs by at most h²/8·max|V''| = (0.05 ms)²/8 · 10 mV·(2π/50 ms)² = 4.9e-5 mV."""
    t = np.arange(-10.0, 130.0, 0.05)
    path = write_nwb(tmp_path / "cell.nwb", {"ccs": (wave(t) * 1e-3, 20e3, -0.010, "volts")})
    times = np.arange(0.0, 120.0, 1.0)
    v = read_target(TargetFile(path, start=0.025), times, 1.0, 120.0)
    assert np.max(np.abs(v - wave(times + 0.025))) < 1e-4


def test_abf_is_read_in_mV_per_sweep(tmp_path):
    """Sweep 1 of two at 10 kHz. pyabf stores 16-bit integers (1/327.68 mV per step for
    |V| ≤ 100 mV, truncated), so the read trace is within 0.0031 mV plus the interpolation
    error (≤ 2e-4 mV at 0.1 ms); the bound is 0.004 mV."""
    t = np.arange(0.0, 150.0, 0.1)
    path = write_abf(tmp_path / "cell.abf", np.stack([wave(t) - 5.0, wave(t)]), 10e3)
    times = np.arange(0.0, 120.0, 1.0)
    v = read_target(TargetFile(path, sweep=1, start=0.05), times, 1.0, 120.0)
    assert np.max(np.abs(v - wave(times + 0.05))) < 4e-3


def test_a_recorded_target_gives_the_same_fit_as_the_known_one(tmp_path):
    """LM on the trace made from known parameters, then on the same trace written to NWB at
    10 kHz (linear upsampling, which resampling to 1 ms undoes up to rounding) with a 30 ms
    baseline before the protocol (``start = 30``): the two runs see the same target and give
    the same history (the target differs by rounding only, ~1e-13 mV)."""
    text = LOG_BASE.replace("iterations = 4", 'iterations = 6\nmethod = "lm"')
    (tmp_path / "known").mkdir()
    assert main(["tune", str(write(tmp_path / "known", text))]) == 0
    known = json.loads((tmp_path / "known" / "out" / "results.json").read_text())
    with np.load(tmp_path / "known" / "out" / "target.npz") as data:
        t, v = data["t"], data["v"]
    fine = np.arange(0.0, t[-1] + 30.0 + 1e-9, 0.1)  # the recording's own clock
    recorded = np.interp(fine - 30.0, t, v, left=v[0])
    write_nwb(tmp_path / "cell.nwb", {"ccs": (recorded * 1e-3, 10e3, 0.0, "volts"),
                                      "stimulus": (np.zeros(fine.size), 10e3, 0.0, "amperes")})
    target = text[text.index("[target.values]"):text.index("[optimizer]")]
    (tmp_path / "nwb").mkdir()
    config = write(tmp_path / "nwb", text.replace(
        target, f'[target]\nfile = "{tmp_path / "cell.nwb"}"\nseries = "ccs"\nstart = 30.0\n\n'))
    assert main(["tune", str(config)]) == 0
    fitted = json.loads((tmp_path / "nwb" / "out" / "results.json").read_text())
    losses = [[row["loss"] for row in r["history"]] for r in (known, fitted)]
    # at losses ~1e-21 mV² the rounding of the target (~1e-13 mV) shows: atol 1e-18
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6, atol=1e-18)
    assert fitted["final_rms_mV"] < 1e-2


def replace_target(text: str, target: str) -> str:
    old = text[text.index("[target.values]"):text.index("[optimizer]")]
    return text.replace(old, target + "\n\n")


@pytest.fixture
def recordings(tmp_path):
    t = np.arange(-10.0, 130.0, 0.1)
    nwb = write_nwb(tmp_path / "cell.nwb", {"ccs": (wave(t) * 1e-3, 10e3, -0.010, "volts"),
                                            "stim": (np.zeros(t.size), 10e3, -0.010, "amperes")})
    # pyabf reads back only files of ≥ ~2000 samples (its ABF1 header reads), so these are longer
    pa = write_abf(tmp_path / "current.abf", wave(np.arange(0.0, 300.0, 0.1))[None, :], 10e3, unit="pA")
    short = write_abf(tmp_path / "short.abf", wave(np.arange(0.0, 50.0, 0.02))[None, :], 50e3)
    npz = tmp_path / "target.npz"
    np.savez(npz, t=np.arange(120.0), v=wave(np.arange(120.0)))
    return nwb, pa, short, npz


@pytest.mark.parametrize("target, message", [
    ('[target]\nfile = "missing.nwb"', r"tune.toml:\d+:\d+: file: file missing.nwb not found"),
    ('[target]\nfile = "{nwb}"\nseries = "sweep_7"',
     r"tune.toml:\d+:\d+: .*cell.nwb: no series 'sweep_7' in the acquisition .*series: ccs, stim"),
    ('[target]\nfile = "{nwb}"\nseries = "stim"',
     r"tune.toml:\d+:\d+: .*cell.nwb: series 'stim' is in 'amperes', not a voltage"),
    ('[target]\nfile = "{pa}"', r"tune.toml:\d+:\d+: .*current.abf: sweep 0, channel 0 is in 'pA', not a voltage"),
    ('[target]\nfile = "{short}"', r"tune.toml:\d+:\d+: .*short.abf: the recording covers 0–49.98 ms; "
                                   r"the protocol needs 0–119 ms"),
    ('[target]\nfile = "{nwb}"\nseries = "ccs"\nsweeps = 2', r"tune.toml:\d+:\d+: \[target\] unknown key 'sweeps'"),
    ('[target]\nfile = "{npz}"\nsweep = 1', r"tune.toml:\d+:\d+: \[target\] sweep is for NWB or ABF recordings"),
])
def test_recording_config_errors_are_exit_2_with_position(tmp_path, capsys, recordings, target, message):
    nwb, pa, short, npz = recordings
    path = write(tmp_path, replace_target(LOG_BASE, target.format(nwb=nwb, pa=pa, short=short, npz=npz)))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err), err
    assert "\n" not in err and "Traceback" not in err


def test_the_only_voltage_series_needs_no_name(tmp_path, recordings):
    nwb = recordings[0]
    config = load_config(write(tmp_path, replace_target(LOG_BASE, f'[target]\nfile = "{nwb}"\nstart = 0.5')))
    target = config.target_files["main"]
    assert target.series is None and target.start == 0.5
    times = np.arange(0.0, 120.0)
    np.testing.assert_allclose(read_target(target, times, 1.0, 120.0), wave(times + 0.5), atol=1e-3)


def test_one_recording_per_protocol(tmp_path, recordings):
    """``files`` maps each protocol to a path or to a table with its own series/sweep/start."""
    nwb = recordings[0]
    text = replace_target(LOG_BASE.replace("[tune]", PROTOCOLS + "\n[tune]"),
                          f'[target]\nfiles = {{ rest = {{ file = "{nwb}", series = "ccs", start = 2.0 }}, '
                          f'step = "{nwb}" }}')
    files = load_config(write(tmp_path, text)).target_files
    assert (files["rest"].series, files["rest"].start) == ("ccs", 2.0)
    assert (files["step"].series, files["step"].start) == (None, 0.0)


def test_a_file_that_is_not_a_recording_is_one_error(tmp_path):
    fake = tmp_path / "fake.nwb"
    fake.write_bytes(b"not hdf5")
    pytest.importorskip("pynwb")
    with pytest.raises(GradgenError, match=r"fake.nwb: cannot read it as NWB"):
        read_target(TargetFile(fake), np.arange(0.0, 10.0), 1.0, 10.0)
