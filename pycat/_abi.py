"""ctypes mirror of Arbor's mechanism ABI (mechanism_abi.h, Arbor 0.12) and its check.

The ABI version macro is 0 for every 0.x release although the layout changed, so the
mirror is compared field by field with ``offsetof`` values the compiled shim reports.
"""
from __future__ import annotations

import ctypes as C

from .errors import PycatError

# method ids, shared with shim.cpp
INIT, CURRENTS, EVENTS, ADVANCE, WRITE_IONS, POST_EVENT = range(6)
METHOD_NAMES = ("init", "compute_currents", "apply_events", "advance_state", "write_ions", "post_event")

KIND_POINT = 1
KIND_DENSITY = 2

P = C.c_void_p


class IonState(C.Structure):
    _fields_ = [
        ("current_density", P),
        ("reversal_potential", P),
        ("internal_concentration", P),
        ("external_concentration", P),
        ("diffusive_concentration", P),
        ("ionic_charge", P),
        ("index", P),
    ]


class EventData(C.Structure):
    _fields_ = [("mech_index", C.c_uint32), ("weight", C.c_float)]


class EventStream(C.Structure):
    _fields_ = [("begin", P), ("end", P)]


class ConstraintPartition(C.Structure):
    _fields_ = [
        ("n_contiguous", C.c_uint32),
        ("n_constant", C.c_uint32),
        ("n_independent", C.c_uint32),
        ("n_none", C.c_uint32),
        ("contiguous", P),
        ("constant", P),
        ("independent", P),
        ("none", P),
    ]


class PPack(C.Structure):
    _fields_ = [
        ("width", C.c_uint32),
        ("n_detectors", C.c_int32),
        ("vec_ci", P),
        ("dt", C.c_double),
        ("vec_v", P),
        ("vec_i", P),
        ("vec_g", P),
        ("temperature_degC", P),
        ("diam_um", P),
        ("area_um2", P),
        ("time_since_spike", P),
        ("node_index", P),
        ("peer_index", P),
        ("multiplicity", P),
        ("weight", P),
        ("mechanism_id", C.c_uint32),
        ("events", EventStream),
        ("index_constraints", ConstraintPartition),
        ("parameters", C.POINTER(P)),
        ("state_vars", C.POINTER(P)),
        ("globals", P),
        ("ion_states", C.POINTER(IonState)),
        ("random_numbers", P),
    ]


class Op(C.Structure):
    """pycat_op in shim.cpp: one row of packing work."""

    _fields_ = [("kind", C.c_int32), ("n", C.c_int32), ("data", P), ("index", P), ("row", C.c_int64)]


OP_GATHER, OP_ADD, OP_ASSIGN, OP_FILL, OP_COMPARE = range(5)

CALLBACK = C.CFUNCTYPE(C.c_int, C.c_int, C.c_int, P, P, C.c_uint64, C.c_double)


def _expected() -> list[tuple[str, int]]:
    """(what, value) in the order pycat_layout reports them."""
    out: list[tuple[str, int]] = [("sizeof(ppack)", C.sizeof(PPack))]
    for name, _ in PPack._fields_:
        out.append((f"offsetof(ppack.{name})", getattr(PPack, name).offset))
    out.append(("sizeof(ion_state)", C.sizeof(IonState)))
    for name, _ in IonState._fields_:
        out.append((f"offsetof(ion_state.{name})", getattr(IonState, name).offset))
    out += [
        ("sizeof(event)", C.sizeof(EventData)),
        ("offsetof(event.mech_index)", EventData.mech_index.offset),
        ("offsetof(event.weight)", EventData.weight.offset),
        ("sizeof(event_stream)", C.sizeof(EventStream)),
        ("sizeof(arb_value_type)", 8),
        ("sizeof(arb_index_type)", 4),
        ("sizeof(arb_size_type)", 4),
        ("sizeof(arb_weight_type)", 4),
        ("sizeof(pycat_op)", C.sizeof(Op)),
        ("offsetof(pycat_op.data)", Op.data.offset),
        ("offsetof(pycat_op.index)", Op.index.offset),
        ("offsetof(pycat_op.row)", Op.row.offset),
    ]
    return out


def check_layout(lib: C.CDLL) -> int:
    """Compare the mirror with the compiled headers; return the shim's slot count."""
    buf = (C.c_uint64 * 64)()
    count = lib.pycat_layout(buf, 64)
    expected = _expected()
    got = list(buf[:count])
    # the shim appends ABI version and slot count after the checked values
    if count != len(expected) + 2:
        raise PycatError(f"pycat shim reports {count} layout values, expected {len(expected) + 2}")
    bad = [f"{what}: headers {g}, pycat {e}" for (what, e), g in zip(expected, got) if g != e]
    if bad:
        raise PycatError(
            "the installed Arbor's mechanism ABI differs from the one pycat knows: " + "; ".join(bad),
            hint="pycat supports Arbor 0.12.x; update pycat/_abi.py for this Arbor",
        )
    return int(got[-1])
