"""Zero-copy numpy views of one mechanism instance's buffers (one cell group).

Arbor's per-CV arrays (``vec_v``, ``vec_i``, ``vec_g``, temperatures, ion arrays) span the
whole cell group; a mechanism reaches its CVs through ``node_index`` (and each ion through
its own ``index``). The ppack carries no length for those arrays, so the views cover
``0 .. max(index)``, every entry the mechanism can address. Per-instance arrays
(parameters, states, weights) have exactly ``width`` entries; Arbor's padding is hidden.
"""
from __future__ import annotations

import ctypes as C
from typing import Any, Iterator

import numpy as np

from ._abi import EventStream, IonState, PPack
from .errors import PycatError
from .mechanism import Ion, Mechanism

_EVENT_DTYPE = np.dtype([("mech_index", "<u4"), ("weight", "<f4")])


def _array(addr: int | None, n: int, dtype: Any) -> np.ndarray | None:
    """A writable numpy view of n items at addr (None for a null pointer)."""
    dt = np.dtype(dtype)
    if n == 0:
        return np.empty(0, dt)
    if not addr:
        return None
    buf = (C.c_char * (n * dt.itemsize)).from_address(addr)
    return np.frombuffer(buf, dtype=dt, count=n)


def as_selector(index: np.ndarray) -> slice | np.ndarray:
    """A slice when index is a contiguous ascending range (cheaper than fancy indexing)."""
    n = len(index)
    if n and index[0] >= 0 and np.array_equal(index, np.arange(index[0], index[0] + n)):
        return slice(int(index[0]), int(index[0]) + n)
    return index


class Fields:
    """Named per-instance arrays: ``f.gbar`` or ``f["gbar"]``; assignment writes in place."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        object.__setattr__(self, "_arrays", arrays)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise AttributeError(f"no field {name!r}; have {', '.join(self._arrays)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getitem__(self, name: str) -> np.ndarray:
        return self.__getattr__(name)

    def __setitem__(self, name: str, value: Any) -> None:
        arr = self.__getattr__(name)
        _check_shape(value, arr.shape, name)
        arr[...] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def items(self):
        return self._arrays.items()

    def __len__(self) -> int:
        return len(self._arrays)


def _check_shape(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape not in ((), shape):
        raise PycatError(
            f"{what} has shape {arr.shape}, expected {shape} (one value per instance) or a scalar"
        )
    return arr


class IonView:
    """One ion's arrays over the cell group, indexed through ``index`` (per instance).

    ``i`` current density [A/m²], ``e`` reversal potential [mV], ``xi``/``xo``/``xd``
    internal/external/diffusive concentration, ``charge`` the valence (length 1).
    Arrays the mechanism did not ask for may be ``None``.
    """

    def __init__(self, info: Ion, state: IonState, width: int):
        self.name = info.name
        self.info = info
        self.index = _array(state.index, width, np.int32)
        n = int(self.index.max()) + 1 if width else 0
        self.i = _array(state.current_density, n, np.float64)
        self.e = _array(state.reversal_potential, n, np.float64)
        self.xi = _array(state.internal_concentration, n, np.float64)
        self.xo = _array(state.external_concentration, n, np.float64)
        self.xd = _array(state.diffusive_concentration, n, np.float64)
        self.charge = _array(state.ionic_charge, 1, np.float64)
        self.unique = width == 0 or len(np.unique(self.index)) == width
        self.sel = as_selector(self.index)

    def at(self, what: str) -> np.ndarray:
        """Per-instance copy of one array, e.g. ``ion.at("e")`` is e[index]."""
        arr = getattr(self, what)
        if arr is None:
            raise PycatError(f"ion '{self.name}' has no '{what}' array here (declare it in Ion(...))")
        return arr[self.sel].copy()


class Events:
    """Events delivered to a point mechanism in this step (``mech_index``, ``weight``)."""

    def __init__(self, addr: int | None):
        data = np.empty(0, _EVENT_DTYPE)
        if addr:
            stream = EventStream.from_address(addr)
            if stream.begin and stream.end and stream.end > stream.begin:
                n = (stream.end - stream.begin) // _EVENT_DTYPE.itemsize
                data = _array(stream.begin, n, _EVENT_DTYPE)
        self.data = data
        self.index = data["mech_index"].astype(np.intp)
        self.weight = data["weight"].astype(np.float64)

    def __len__(self) -> int:
        return len(self.data)


class MechView:
    """Everything one mechanism instance (one cell group) sees, as numpy views.

    Units: ``vec_i``/``vec_g`` and ion ``i`` are raw Arbor units (A/m², kS/m²); use
    :meth:`add_current` to add densities in mA/cm² and S/cm² (density mechanisms) or
    currents in nA and conductances in µS (point mechanisms) with the right weights.
    ``dt`` is refreshed at every call. ``cache`` is free for the mechanism's own use.
    """

    def __init__(self, mech: Mechanism, pp_addr: int, signature: int):
        pp = PPack.from_address(pp_addr)
        w = int(pp.width)
        self.mechanism = mech.name
        self.kind = mech.kind
        self.signature = signature
        self.pp_addr = pp_addr
        self.width = w
        self.dt = float(pp.dt)
        self.node_index = _array(pp.node_index, w, np.int32)
        n_cv = int(self.node_index.max()) + 1 if w else 0
        self.n_cv = n_cv
        self.weight = _array(pp.weight, w, np.float64)
        self.multiplicity = _array(pp.multiplicity, w, np.int32) if pp.multiplicity else None
        self.vec_v = _array(pp.vec_v, n_cv, np.float64)
        self.vec_i = _array(pp.vec_i, n_cv, np.float64)
        self.vec_g = _array(pp.vec_g, n_cv, np.float64)
        self.temperature = _array(pp.temperature_degC, n_cv, np.float64)
        self.diam = _array(pp.diam_um, n_cv, np.float64)
        self.area = _array(pp.area_um2, n_cv, np.float64)
        ci = _array(pp.vec_ci, n_cv, np.int32)
        self.cell_index = ci[self.node_index] if ci is not None else None
        self.p = Fields({f.name: _array(pp.parameters[k], w, np.float64)
                         for k, f in enumerate(mech.parameters)})
        self.s = Fields({f.name: _array(pp.state_vars[k], w, np.float64)
                         for k, f in enumerate(mech.states)})
        g = _array(pp.globals, len(mech.globals), np.float64)
        self.globals = {f.name: float(g[k]) for k, f in enumerate(mech.globals)}
        self.ions = {ion.name: IonView(ion, pp.ion_states[k], w) for k, ion in enumerate(mech.ions)}
        self.unique = w == 0 or len(np.unique(self.node_index)) == w
        self.node_sel = as_selector(self.node_index)
        # current weights: density values are mA/cm² -> A/m² (x10), point values nA with
        # weight 1000/area; diffusive concentrations: CV fraction (density) or 1 (point)
        self.current_scale = 10.0 * self.weight if mech.kind == "density" else self.weight.copy()
        self.xd_scale = self.weight.copy() if mech.kind == "density" else np.ones(w)
        self.cache: dict[Any, Any] = {}
        self.epoch = 0  # counts init calls: data that only init can change is re-read

    # -- per-instance reads -------------------------------------------------------------
    @property
    def v(self) -> np.ndarray:
        """Membrane potential at each instance's CV [mV] (a copy)."""
        return self.vec_v[self.node_sel].copy()

    # -- accumulating writes --------------------------------------------------------------
    def _add(self, target: np.ndarray, index: np.ndarray, values: np.ndarray, unique: bool) -> None:
        if unique:
            target[index] += values
        else:
            np.add.at(target, index, values)

    def add_current(self, i: Any, g: Any = None, ion: str | None = None) -> None:
        """Accumulate a current (and its conductance dI/dV) into the membrane equation.

        ``ion`` also books the current as that ion's current density. Shapes: a scalar or
        one value per instance.
        """
        i = _check_shape(i, (self.width,), f"mechanism '{self.mechanism}': current")
        si = self.current_scale * i
        self._add(self.vec_i, self.node_sel, si, self.unique)
        if g is not None:
            g = _check_shape(g, (self.width,), f"mechanism '{self.mechanism}': conductance")
            self._add(self.vec_g, self.node_sel, self.current_scale * g, self.unique)
        if ion is not None:
            iv = self._ion(ion)
            self._add(iv.i, iv.sel, si, iv.unique)

    def add_ion_current(self, ion: str, i: Any) -> None:
        """Book a current as an ion's current density only (it is already in add_current)."""
        i = _check_shape(i, (self.width,), f"mechanism '{self.mechanism}': ion current")
        iv = self._ion(ion)
        self._add(iv.i, iv.sel, self.current_scale * i, iv.unique)

    def add_xd(self, ion: str, value: Any) -> None:
        """Xd += weight·value, the way NMODL writes a diffusive concentration."""
        value = _check_shape(value, (self.width,), f"mechanism '{self.mechanism}': Xd increment")
        iv = self._ion(ion)
        if iv.xd is None:
            raise PycatError(f"mechanism '{self.mechanism}': ion '{ion}' is not declared diffusive")
        self._add(iv.xd, iv.sel, self.xd_scale * value, iv.unique)

    def _ion(self, name: str) -> IonView:
        try:
            return self.ions[name]
        except KeyError:
            raise PycatError(f"mechanism '{self.mechanism}' does not declare ion '{name}'") from None
