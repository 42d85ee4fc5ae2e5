"""The process-wide bridge: the loaded shim, its slots, and the one Python callback.

Each registered mechanism occupies one slot of the shim for the rest of the process
(Arbor keeps pointers into it). The callback looks the slot up, finds or rebuilds the
numpy views for the ppack it was handed, and runs the Python method. Any exception is
stored and reported back as a non-zero status, which the shim turns into a C++
exception that Arbor carries out of ``simulation.run`` as a RuntimeError.
"""
from __future__ import annotations

import ctypes as C
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import arbor

from . import _abi
from ._build import shim_path
from .errors import MechanismCallbackError, PycatError
from .mechanism import Mechanism
from .views import Events, MechView

_FIELD_GLOBAL, _FIELD_STATE, _FIELD_PARAM = 0, 1, 2


@dataclass
class _Slot:
    mechanism: Mechanism
    methods: tuple[Any, ...]
    views: dict[int, MechView] = field(default_factory=dict)


class _Bridge:
    """Singleton state of the loaded shim (created on first use)."""

    def __init__(self) -> None:
        self.path = str(shim_path())
        self.lib = C.CDLL(self.path)
        self.n_slots = _abi.check_layout(self.lib)
        self.lib.pycat_new_slot.restype = C.c_int
        self.lib.pycat_new_slot.argtypes = [C.c_char_p, C.c_int, C.c_int, C.c_int, C.c_uint]
        self.lib.pycat_add_field.argtypes = [C.c_int, C.c_int, C.c_char_p, C.c_char_p,
                                             C.c_double, C.c_double, C.c_double]
        self.lib.pycat_add_ion.argtypes = [C.c_int, C.c_char_p, C.c_uint, C.c_int]
        self.lib.pycat_set_error.argtypes = [C.c_char_p]
        self.lib.pycat_stage.argtypes = [C.c_int]
        self.run_ops = self.lib.pycat_run_ops
        self.run_ops.argtypes = [C.c_void_p, C.c_int, C.c_void_p]
        self.run_ops.restype = C.c_int
        self.slots: dict[int, _Slot] = {}
        self.errors: list[MechanismCallbackError] = []
        self.lock = threading.Lock()
        self._callback = _abi.CALLBACK(self._dispatch)  # keep alive for the process
        self.lib.pycat_set_callback(self._callback)

    # -- registration -----------------------------------------------------------------------
    def register(self, mech: Mechanism) -> int:
        methods = mech.methods()
        mask = sum(1 << i for i, fn in enumerate(methods) if fn is not None)
        kind = _abi.KIND_POINT if mech.kind == "point" else _abi.KIND_DENSITY
        slot = self.lib.pycat_new_slot(mech.name.encode(), kind, int(mech.linear),
                                       int(mech.post_event is not None), mask)
        if slot < 0:
            raise PycatError(f"all {self.n_slots} pycat mechanism slots of this process are used",
                             hint="reuse catalogues instead of building new ones in a loop")
        for which, fields in ((_FIELD_GLOBAL, mech.globals), (_FIELD_STATE, mech.states),
                              (_FIELD_PARAM, mech.parameters)):
            for f in fields:
                self.lib.pycat_add_field(slot, which, f.name.encode(), f.unit.encode(),
                                         f.default, f.lower, f.upper)
        for ion in mech.ions:
            self.lib.pycat_add_ion(slot, ion.name.encode(), ion.flags(), ion.valence or 0)
        self.slots[slot] = _Slot(mech, methods)
        return slot

    def load(self, mechs: list[Mechanism]) -> arbor.catalogue:
        names = [m.name for m in mechs]
        if len(set(names)) != len(names):
            raise PycatError(f"mechanism names repeat in one catalogue: {names}")
        if not mechs:
            raise PycatError("a catalogue needs at least one mechanism")
        with self.lock:
            slots = [self.register(m) for m in mechs]
            self.lib.pycat_stage_clear()
            for s in slots:
                self.lib.pycat_stage(s)
            try:
                return arbor.load_catalogue(self.path)
            finally:
                self.lib.pycat_stage_clear()

    # -- the callback -------------------------------------------------------------------------
    def _dispatch(self, slot: int, method: int, pp: int, events: int, sig: int, dt: float) -> int:
        try:
            entry = self.slots[slot]
            view = entry.views.get(pp)
            if view is None or view.signature != sig:
                view = MechView(entry.mechanism, pp, sig)
                entry.views[pp] = view
            view.dt = dt
            if method == _abi.INIT:
                view.epoch += 1
            fn = entry.methods[method]
            if method == _abi.EVENTS:
                fn(view, Events(events))
            else:
                fn(view)
            return 0
        except BaseException as exc:  # noqa: BLE001 - nothing may unwind into C++
            try:
                name = self.slots[slot].mechanism.name if slot in self.slots else f"slot {slot}"
                err = MechanismCallbackError(name, _abi.METHOD_NAMES[method], exc,
                                             traceback.format_exc())
                self.errors.append(err)
                self.lib.pycat_set_error(str(err).encode("utf-8", "replace"))
            except BaseException:  # noqa: BLE001
                pass
            return 1


_bridge: _Bridge | None = None
_bridge_lock = threading.Lock()


def bridge() -> _Bridge:
    """The loaded shim, built and checked on first use."""
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            _bridge = _Bridge()
        return _bridge


def catalogue(mechanisms: Mechanism | list[Mechanism], base: arbor.catalogue | None = None,
              prefix: str = "") -> arbor.catalogue:
    """An Arbor catalogue with the given Python mechanisms.

    With ``base`` (e.g. ``arbor.default_catalogue()``) a copy of it extended by the new
    mechanisms (names prefixed by ``prefix``) is returned, ready for
    ``arbor.cable_cell_global_properties().catalogue`` or ``single_cell_model.properties``.
    """
    mechs = [mechanisms] if isinstance(mechanisms, Mechanism) else list(mechanisms)
    cat = bridge().load(mechs)
    if base is None:
        return cat
    out = arbor.catalogue(base)
    out.extend(cat, prefix)
    return out


def last_error() -> MechanismCallbackError | None:
    """The most recent failure of a Python mechanism method in this process."""
    b = _bridge
    return b.errors[-1] if b is not None and b.errors else None
