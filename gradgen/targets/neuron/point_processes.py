"""Point processes (synapses) in a NEURON model: found, swapped for their gradient versions.

A point process is an object the model holds (``h.ExpSyn(seg)``), not a mechanism inserted
on a section, and NEURON cannot re-target a NetCon. Swapping one therefore makes its
gradient version at the same location with the same parameter values, gives every NetCon
that targeted it a twin (same source, threshold, delay and weights) targeting the gradient
version, and deactivates the old NetCon. The original object stays where the model holds
it, without events: a synapse whose current needs an event (every NET_RECEIVE one here)
then draws nothing. ``weight`` θ (the NET_RECEIVE argument) is the first weight of those
NetCons.
"""
from __future__ import annotations

from typing import Any, Iterable

from gradgen.errors import GradgenError


def kind_of(point: Any) -> str:
    """A point process's mechanism name (``ExpSyn[3]`` -> ``ExpSyn``)."""
    return point.hname().split("[")[0]


def points_on(sections: Iterable[Any], mechanism: str) -> list[Any]:
    """The point processes of ``mechanism`` placed on ``sections``."""
    return [p for sec in sections for seg in sec for p in seg.point_processes() if kind_of(p) == mechanism]


def netcons_into(h: Any, point: Any) -> list[Any]:
    """The NetCons whose target is ``point``."""
    return [nc for nc in h.List("NetCon") if nc.syn() is not None and nc.syn().hname() == point.hname()]


def _twin(h: Any, nc: Any, target: Any) -> Any:
    """A NetCon like ``nc`` into ``target``."""
    source = nc.pre()
    if source is not None:
        twin = h.NetCon(source, target)
    elif nc.preseg() is not None:
        seg = nc.preseg()
        twin = h.NetCon(seg._ref_v, target, sec=seg.sec)
    else:
        raise GradgenError(f"a NetCon into {target.hname()} has neither a source cell nor a source segment",
                           hint="connect it to a NetStim, an artificial cell or a section's voltage")
    twin.threshold, twin.delay = nc.threshold, nc.delay
    for i in range(int(nc.wcnt())):
        twin.weight[i] = nc.weight[i]
    return twin


def swap_points(h: Any, sections: Iterable[Any], present: str, gradient: str, parameters: Iterable[str]) -> list[Any]:
    """Replace every ``present`` point process on ``sections`` by a ``gradient`` one (same
    location and parameter values; the NetCons re-made into it). Returns the new objects and
    NetCons, which the caller keeps alive."""
    kept: list[Any] = []
    for old in points_on(sections, present):
        seg = old.get_segment()
        new = getattr(h, gradient)(seg)
        for name in parameters:
            if hasattr(old, name):
                setattr(new, name, getattr(old, name))
        for nc in netcons_into(h, old):
            kept.append(_twin(h, nc, new))
            nc.active(False)
        kept.append(new)
    return kept


def set_point_value(h: Any, point: Any, parameter: str, value: float) -> None:
    """A RANGE value of one point process, or (``parameter`` not one of its) the first weight
    of every NetCon into it: the NET_RECEIVE argument."""
    if hasattr(point, parameter):
        setattr(point, parameter, value)
        return
    if hasattr(h, f"{parameter}_{kind_of(point)}"):  # a GLOBAL
        setattr(h, f"{parameter}_{kind_of(point)}", value)
        return
    for nc in netcons_into(h, point):
        nc.weight[0] = value
