"""Declarations of Python mechanisms: what Arbor needs to know before it calls them."""
from __future__ import annotations

import keyword
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from .errors import PycatError

Method = Callable[..., None]
Kind = Literal["density", "point"]


@dataclass(frozen=True)
class Ion:
    """An ion the mechanism uses; flags mirror NMODL's ``USEION ... READ/WRITE``.

    Currents may always be written (``add_current(..., ion=name)``); ``diffusive`` gives
    access to the diffusive concentration Xd; ``valence`` makes Arbor verify it.
    """

    name: str
    read_rev: bool = False
    write_rev: bool = False
    read_int: bool = False
    write_int: bool = False
    read_ext: bool = False
    write_ext: bool = False
    diffusive: bool = False
    read_valence: bool = False
    valence: int | None = None

    def flags(self) -> int:
        bits = (self.write_int, self.write_ext, self.read_int, self.read_ext, self.diffusive,
                self.write_rev, self.read_rev, self.read_valence, self.valence is not None)
        return sum(1 << i for i, b in enumerate(bits) if b)


@dataclass(frozen=True)
class Field:
    """A parameter, state or global: name, default value and unit (text, informative)."""

    name: str
    default: float = math.nan
    unit: str = ""
    lower: float = -math.inf
    upper: float = math.inf


def _fields(spec: Mapping[str, Any] | Sequence[Any], what: str) -> tuple[Field, ...]:
    """Accept {name: default}, {name: (default, unit)}, [name, ...] or [Field, ...]."""
    out: list[Field] = []
    items = spec.items() if isinstance(spec, Mapping) else [(s, None) for s in spec]
    for key, val in items:
        if isinstance(key, Field):
            out.append(key)
        elif isinstance(val, tuple):
            out.append(Field(key, float(val[0]), str(val[1])))
        elif val is None:
            out.append(Field(key))
        else:
            out.append(Field(key, float(val)))
    for f in out:
        if not f.name.isidentifier() or keyword.iskeyword(f.name):
            raise PycatError(f"{what} name {f.name!r} is not a Python identifier")
    return tuple(out)


@dataclass
class Mechanism:
    """A density or point mechanism whose methods are Python callables.

    Every method receives a :class:`pycat.views.MechView` of the mechanism's buffers in
    one cell group (``apply_events`` also gets an :class:`pycat.views.Events`). Methods
    left as ``None`` are never called (no Python round trip).

    ``parameters``/``states``/``globals``: ``{name: default}``, ``{name: (default, unit)}``
    or a list of names / :class:`Field`. ``linear=True`` allows Arbor to coalesce
    identical point processes (then scale states by ``view.multiplicity`` in ``init``).
    """

    name: str
    kind: Kind = "density"
    parameters: Mapping[str, Any] | Sequence[Any] = field(default_factory=dict)
    states: Mapping[str, Any] | Sequence[Any] = field(default_factory=dict)
    globals: Mapping[str, Any] | Sequence[Any] = field(default_factory=dict)
    ions: Sequence[Ion] = ()
    init: Method | None = None
    compute_currents: Method | None = None
    advance_state: Method | None = None
    write_ions: Method | None = None
    apply_events: Method | None = None
    post_event: Method | None = None
    linear: bool = False

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c in "/()" for c in self.name):
            raise PycatError(f"bad mechanism name {self.name!r}", hint="use letters, digits and _")
        if self.kind not in ("density", "point"):
            raise PycatError(f"mechanism '{self.name}': kind must be 'density' or 'point', not {self.kind!r}")
        self.parameters = _fields(self.parameters, "parameter")
        self.states = _fields(self.states, "state")
        self.globals = _fields(self.globals, "global")
        names = [f.name for f in (*self.parameters, *self.states, *self.globals)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PycatError(f"mechanism '{self.name}': names used twice: {', '.join(dup)}")
        ion_names = [i.name for i in self.ions]
        if len(set(ion_names)) != len(ion_names):
            raise PycatError(f"mechanism '{self.name}': an ion is listed twice")
        if self.kind == "density" and self.apply_events is not None:
            raise PycatError(f"mechanism '{self.name}': only point mechanisms receive events")
        for meth in ("init", "compute_currents", "advance_state", "write_ions", "apply_events", "post_event"):
            fn = getattr(self, meth)
            if fn is not None and not callable(fn):
                raise PycatError(f"mechanism '{self.name}': {meth} is not callable")

    def methods(self) -> tuple[Method | None, ...]:
        """Methods in the shim's order (see _abi.METHOD_NAMES)."""
        return (self.init, self.compute_currents, self.apply_events, self.advance_state,
                self.write_ions, self.post_event)
