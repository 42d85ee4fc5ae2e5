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
name to an NPZ (``t``, ``v``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from gradgen.tuning.problem import Protocol, Stimulus

_STIMULUS_KEYS = {"location", "delay", "duration", "amplitude"}
_PROTOCOL_KEYS = {"name", "stimuli", "weight", "windows", "t_end"}


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


def read_target_files(r, target: dict, protocols: list[Protocol]) -> dict[str, Path]:
    """Protocol name -> NPZ target; ``file`` for a config with one protocol, ``files`` else."""
    names = [p.name for p in protocols] or ["main"]
    if "file" in target:
        if len(names) > 1:
            raise r.error("[target] file is for one protocol; name one file per protocol",
                          "file", hint='files = { ' + ", ".join(f'{n} = "{n}.npz"' for n in names) + " }")
        return {names[0]: r.file(target["file"], "file")}
    files = target.get("files", {})
    if not isinstance(files, dict):
        raise r.error("[target] files must map protocol names to NPZ files", "files")
    for name in files:
        if name not in names:
            raise r.error(f"[target] files: unknown protocol '{name}'", name,
                          hint="protocols: " + ", ".join(names))
    missing = [n for n in names if n not in files]
    if files and missing:
        raise r.error(f"[target] files: no file for protocol '{missing[0]}'", "files")
    return {name: r.file(path, name) for name, path in files.items()}
