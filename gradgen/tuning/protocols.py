"""`[[protocol]]` tables of a tuning config: stimulus sets, each with its own target.

Without any, the config has one protocol, ``main``: ``[simulation]`` with no stimulus. With
them, each protocol is simulated once per evaluation and compared with its own target at
every probe (one residual block per protocol and probe, :mod:`gradgen.losses`)::

    [[protocol]]
    name = "step_0.1nA"
    stimuli = [{ location = "soma", delay = 100.0, duration = 500.0, amplitude = 0.1 }]
    weight = 1.0                  # optional; the block weights of its probes
    # windows = [[100.0, 600.0]]  # optional; default [simulation] windows
    # t_end = 800.0               # optional; default [simulation] t_end

``location`` is a region name (its middle) or a location expression; ``amplitude`` in nA,
``delay`` and ``duration`` in ms. With a file target, ``[target] files`` maps every protocol
name to a target file (an NPZ with ``t``, ``v``, or a recording: :mod:`gradgen.tuning.recordings`).
"""
from __future__ import annotations

from typing import Any, Callable

from gradgen.errors import GradgenError
from gradgen.tuning.problem import Protocol, Stimulus
from gradgen.tuning.recordings import TargetFile, read_target

_STIMULUS_KEYS = {"location", "delay", "duration", "amplitude"}
_PROTOCOL_KEYS = {"name", "stimuli", "weight", "windows", "t_end"}
_TARGET_FILE_KEYS = {"series", "sweep", "channel", "start"}


def read_protocols(r, sim: dict, windows: list[tuple[float, float]],
                   location: Callable[[str], str]) -> tuple[list[Protocol], dict[str, float]]:
    """Protocols and their weights (none without ``[[protocol]]`` tables: the problem then
    makes ``main`` from ``[simulation]``); ``r`` is the config reader (errors point into the
    file), ``location`` turns a region name or expression into one location expression."""
    t_end = r.number(sim, "simulation", "t_end", positive=True)
    dt = r.number(sim, "simulation", "dt", 0.025, True)
    sample_dt = r.number(sim, "simulation", "sample_dt", 1.0, True)
    tables = r.data.get("protocol", [])
    if not tables:
        return [], {}
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise r.error("'protocol' must be an array of tables: [[protocol]]", "protocol")
    protocols, weights = [], {}
    for table in tables:
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise r.error("[[protocol]] needs a 'name'", "[[protocol]]")
        if name in weights:
            raise r.error(f"[[protocol]] name '{name}' is used twice", name)
        unknown = set(table) - _PROTOCOL_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise r.error(f"[[protocol]] {name}: unknown key '{key}'", key,
                          hint="keys: " + ", ".join(sorted(_PROTOCOL_KEYS)))
        stimuli = tuple(_stimulus(r, name, s, location) for s in table.get("stimuli", []))
        own = table.get("windows", windows)
        if not isinstance(own, list) or not all(
                isinstance(w, (list, tuple)) and len(w) == 2 and w[0] < w[1] for w in own):
            raise r.error(f"[[protocol]] {name}: windows must be [start, stop] pairs (ms)", "windows")
        section = f"protocol {name}"
        protocols.append(Protocol(r.number(table, section, "t_end", t_end, True), dt, sample_dt,
                                  tuple((float(a), float(b)) for a, b in own), stimuli, name))
        weights[name] = r.number(table, section, "weight", 1.0, True)
    return protocols, weights


def _stimulus(r, protocol: str, table: Any, location: Callable[[str], str]) -> Stimulus:
    if not isinstance(table, dict) or set(table) != _STIMULUS_KEYS:
        raise r.error(f"[[protocol]] {protocol}: a stimulus is a table with "
                      + ", ".join(sorted(_STIMULUS_KEYS)), "stimuli",
                      hint='e.g. { location = "soma", delay = 100.0, duration = 500.0, amplitude = 0.1 }')
    section = f"protocol {protocol} stimulus"
    return Stimulus(location(str(table["location"])), r.number(table, section, "delay"),
                    r.number(table, section, "duration", positive=True),
                    r.number(table, section, "amplitude"))


def read_target_files(r, target: dict, protocols: list[Protocol], main: Protocol) -> dict[str, TargetFile]:
    """Protocol name -> target file; ``file`` for a config with one protocol, ``files`` else.

    A value of ``files`` is a path or a table ``{ file = ..., series/sweep/channel/start = ... }``;
    ``[target]`` series, sweep, channel and start are the defaults (gradgen.tuning.recordings).
    Each file is read here, so that a missing series, a wrong unit or a short recording is an
    error at its place in the config, before anything runs.
    """
    names = [p.name for p in protocols] or ["main"]
    if "file" in target:
        if len(names) > 1:
            raise r.error("[target] file is for one protocol; name one file per protocol",
                          "file", hint='files = { ' + ", ".join(f'{n} = "{n}.npz"' for n in names) + " }")
        entries = {names[0]: target["file"]}
    else:
        entries = target.get("files", {})
        if not isinstance(entries, dict):
            raise r.error("[target] files must map protocol names to target files", "files")
        for name in entries:
            if name not in names:
                raise r.error(f"[target] files: unknown protocol '{name}'", name,
                              hint="protocols: " + ", ".join(names))
        missing = [n for n in names if n not in entries]
        if entries and missing:
            raise r.error(f"[target] files: no file for protocol '{missing[0]}'", "files")
    by_name = {p.name: p for p in protocols} or {"main": main}
    return {name: _target_file(r, target, name, entry, by_name[name]) for name, entry in entries.items()}


def _target_file(r, defaults: dict, name: str, entry: Any, protocol: Protocol) -> TargetFile:
    table = entry if isinstance(entry, dict) else {"file": entry}
    unknown = set(table) - _TARGET_FILE_KEYS - {"file"}
    if unknown:
        key = sorted(unknown)[0]
        raise r.error(f"[target] files: {name}: unknown key '{key}'", key,
                      hint="keys: file, " + ", ".join(sorted(_TARGET_FILE_KEYS)))
    path = r.file(table.get("file"), "file" if "file" in defaults else name)
    options = {k: v for k in _TARGET_FILE_KEYS if (v := table.get(k, defaults.get(k))) is not None}
    series = options.get("series")
    if series is not None and not isinstance(series, str):
        raise r.error("[target] series must be a string (an NWB acquisition name)", "series")
    target = TargetFile(path, series, r.integer(options, "target", "sweep", 0),
                        r.integer(options, "target", "channel", 0), r.number(options, "target", "start", 0.0))
    if options and not target.is_recording:
        key = min(options)
        raise r.error(f"[target] {key} is for NWB or ABF recordings, not {path.name}", key,
                      hint="an NPZ target is sampled at the protocol's times already")
    try:
        read_target(target, protocol.times(), protocol.sample_dt, protocol.t_end)
    except GradgenError as error:
        needle = series if series is not None and f"'{series}'" in error.message else str(table["file"])
        raise r.error(error.message, needle, error.hint) from None
    return target
