"""Bystanders: mechanisms that cannot move V, so they need no gradient version.

A mechanism without a current (no ``NONSPECIFIC_CURRENT``, no ``WRITE i<ion>``) reaches V
only through what it writes into an ion (a concentration, ``xd``, a reversal potential)
and some current then reads (a reversal potential read counts as a read of the internal
concentration, which Arbor's nernst method may follow). When no other input reads anything it writes, V — and so
every dV/dθ — does not depend on it: it runs unchanged beside the gradient mechanisms
(e.g. Arbor's ``inject``, which adds to a diffusive ion's ``xd``, or ``decay``). Its
parameters cannot be θ (their dV/dθ is zero by construction).
"""
from __future__ import annotations

from typing import Sequence

from gradgen.nmodl.ir import Mechanism


def writes(mech: Mechanism) -> set[str]:
    """Ion variables the mechanism writes (currents included)."""
    return {var for ion in mech.ions for var in ion.write}


def has_current(mech: Mechanism) -> bool:
    return bool(mech.nonspecific_currents) or any(
        var == f"i{ion.name}" for ion in mech.ions for var in ion.write)


def bystanders(mechanisms: Sequence[Mechanism]) -> set[str]:
    """Names of the density or point mechanisms that no current depends on."""
    out = set()
    for mech in mechanisms:
        if mech.kind in ("junction", "voltage") or has_current(mech):
            continue
        read_by_others = {var for other in mechanisms if other is not mech
                          for ion in other.ions for var in ion.read}
        # a reversal potential read may follow the internal concentration (nernst method)
        read_by_others |= {f"{ion.name}i" for other in mechanisms if other is not mech
                           for ion in other.ions if f"e{ion.name}" in ion.read}
        if not writes(mech) & read_by_others:
            out.add(mech.name)
    return out


__all__ = ["bystanders", "has_current", "writes"]
