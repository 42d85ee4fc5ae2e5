"""One jitted call per mechanism method: pack inputs into one array, unpack outputs.

JAX's per-call cost grows with every argument and result, and every numpy operation
costs microseconds, so a method runs as ``Y = kernel(X)`` with all copying done by one
C call each way (``pycat_run_ops`` in shim.cpp, driven by op lists built once per cell
group):

- ``X`` has one row per input name (``v``, ``w`` = weight, ``p.NAME``, ``s.NAME``,
  ``c.KEY`` = ion reads and ``celsius``, ``dt``) and one column per instance. On the CPU
  backend ``X`` is a JAX array whose host buffer is refilled in place before each call
  (dispatch is synchronous, so no computation reads it meanwhile); this saves the
  numpy-to-JAX conversion. Elsewhere ``X`` is a numpy array.
- ``Y`` has one row per output: ``i``/``g`` (mA/cm², S/cm²: added to the membrane),
  ``ion_i.ION`` (added to the ion's current), ``xd.ION`` (added to Xd, weighted like a
  current), ``s.NAME`` (assigned to the state). Weights are applied inside the kernel.

The per-instance function sees a dict {row name: scalar} and returns a dict
{output name: scalar}; it is vmapped over instances.
"""
from __future__ import annotations

import ctypes as C
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _abi
from ._abi import Op, PPack
from ._runtime import bridge
from .channel import ion_inputs
from .errors import PycatError
from .mechanism import Mechanism
from .views import MechView

CURRENT_ROWS = ("i", "g")


def is_current_row(name: str) -> bool:
    """Rows that go into the membrane/ion currents (Arbor zeroes these every step)."""
    return name in CURRENT_ROWS or name.startswith("ion_i.")


def is_static_row(name: str) -> bool:
    """Rows that cannot change between two inits: the weight, the parameters (only the
    mechanism itself could write them, and packed kernels never do) and the temperature.
    They are gathered once per init instead of at every call."""
    return name in ("w", "c.celsius") or name.startswith("p.")


def input_rows(mech: Mechanism, reads: Sequence[str] | None = None) -> list[str]:
    """Input rows: v, w, parameters, states, ``c.`` reads, dt.

    ``reads`` defaults to every ion quantity the mechanism declares, plus ``celsius``.
    """
    rows = ["v", "w"]
    rows += [f"p.{f.name}" for f in mech.parameters]
    rows += [f"s.{f.name}" for f in mech.states]
    if reads is None:
        reads = [key for key, _, _ in ion_inputs(mech.ions)] + ["celsius"]
    rows += [f"c.{key}" for key in reads]
    return rows + ["dt"]


class PackedKernel:
    """A per-instance function turned into ``Y = kernel(X)``, jitted once per width."""

    def __init__(self, fn: Callable[[dict], dict], in_rows: Sequence[str], out_rows: Sequence[str]):
        self.in_rows = list(in_rows)
        self.out_rows = list(out_rows)
        rows_in, rows_out = self.in_rows, self.out_rows

        def column(x: Any) -> Any:
            d = {name: x[k] for k, name in enumerate(rows_in)}
            out = fn(d)
            w = d["w"]
            vals = []
            for name in rows_out:
                val = out[name]
                if is_current_row(name):
                    val = 10.0 * w * val  # mA/cm² -> A/m², S/cm² -> kS/m², times CV fraction
                elif name.startswith("xd."):
                    val = w * val
                vals.append(jnp.asarray(val, dtype=jnp.float64))
            return jnp.stack(vals)

        self.fn = jax.jit(jax.vmap(column, in_axes=1, out_axes=1))


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _op_array(ops: list[tuple[int, int, int | None, int | None, int]]) -> tuple[Any, int]:
    arr = (Op * max(len(ops), 1))()
    for k, (kind, n, data, index, row) in enumerate(ops):
        arr[k] = Op(kind, n, data, index, row)
    return arr, len(ops)


_inplace_ok: bool | None = None


def _inplace_inputs_work() -> bool:
    """Once per process: does writing a CPU JAX array's buffer reach the next jit call?"""
    global _inplace_ok
    if _inplace_ok is None:
        try:
            x = jnp.zeros((2, 3), dtype=jnp.float64)
            x.block_until_ready()
            ok = x.devices() == {jax.devices("cpu")[0]} and not jax.config.values["jax_cpu_enable_async_dispatch"]
            src = np.arange(6, dtype=np.float64)
            if ok:
                C.memmove(x.unsafe_buffer_pointer(), src.ctypes.data, src.nbytes)
                ok = float(jax.jit(lambda a: (a * a).sum())(x)) == float((src * src).sum())
            _inplace_ok = bool(ok)
        except Exception:  # noqa: BLE001 - any failure means: use the numpy path
            _inplace_ok = False
    return _inplace_ok


class Plan:
    """The op lists that move one view's data into X and out of Y, built once."""

    def __init__(self, view: MechView, mech: Mechanism, kernel: PackedKernel):
        self.view, self.kernel = view, kernel
        self.run_ops = bridge().run_ops
        w = view.width
        rows = kernel.in_rows
        if _inplace_inputs_work():
            self.X: Any = jnp.zeros((len(rows), w), dtype=jnp.float64)
            self.X.block_until_ready()
            self.x_ptr = self.X.unsafe_buffer_pointer()
        else:
            self.X = np.zeros((len(rows), w))
            self.x_ptr = self.X.ctypes.data
        dt_addr = view.pp_addr + PPack.dt.offset
        gathers, static = [], []
        for r, name in enumerate(rows):
            if name == "dt":
                gathers.append((_abi.OP_FILL, w, dt_addr, None, r * w))
            else:
                data, index = source(view, name)
                op = (_abi.OP_GATHER, w, _ptr(data), _ptr(index), r * w)
                (static if is_static_row(name) else gathers).append(op)
        self.gather_ops = _op_array(gathers)
        self.static_ops = _op_array(static)
        self.static_epoch = -1
        currents, states = [], []
        for r, name in enumerate(kernel.out_rows):
            if name == "i":
                currents.append((_abi.OP_ADD, w, _ptr(view.vec_i), _ptr(view.node_index), r * w))
            elif name == "g":
                currents.append((_abi.OP_ADD, w, _ptr(view.vec_g), _ptr(view.node_index), r * w))
            elif name.startswith("ion_i."):
                ion = view._ion(name[6:])
                currents.append((_abi.OP_ADD, w, _ptr(ion.i), _ptr(ion.index), r * w))
            elif name.startswith("xd."):
                ion = view._ion(name[3:])
                if ion.xd is None:
                    raise PycatError(f"mechanism '{view.mechanism}': ion '{ion.name}' is not diffusive")
                states.append((_abi.OP_ADD, w, _ptr(ion.xd), _ptr(ion.index), r * w))
            elif name.startswith("s."):
                states.append((_abi.OP_ASSIGN, w, _ptr(view.s[name[2:]]), None, r * w))
            else:
                raise PycatError(f"unknown kernel output row {name!r}")
        self.current_ops = _op_array(currents)
        self.state_ops = _op_array(states)
        self.Y: Any = None

    def _run(self, ops: tuple[Any, int], base: int) -> int:
        arr, n = ops
        return self.run_ops(arr, n, base) if n else 0

    def call(self) -> Any:
        """Gather, run the kernel; the result stays in ``self.Y`` until the next call."""
        if self.static_epoch != self.view.epoch:
            self._run(self.static_ops, self.x_ptr)
            self.static_epoch = self.view.epoch
        self._run(self.gather_ops, self.x_ptr)
        self.Y = self.kernel.fn(self.X)
        return self.Y

    def _y_ptr(self) -> int:
        Y = self.Y
        if isinstance(Y, jax.Array) and _inplace_inputs_work():
            return Y.unsafe_buffer_pointer()
        self.Y = Y = np.ascontiguousarray(np.asarray(Y))
        return Y.ctypes.data

    def scatter(self, currents: bool = True, states: bool = True) -> None:
        base = self._y_ptr()
        if states:
            self._run(self.state_ops, base)
        if currents:
            self._run(self.current_ops, base)

    def compare_ops(self, row_names: Sequence[str]) -> tuple[Any, int]:
        """Ops that check whether these input rows still equal what Arbor holds now."""
        w = self.view.width
        ops = []
        for name in row_names:
            data, index = source(self.view, name)
            ops.append((_abi.OP_COMPARE, w, _ptr(data), _ptr(index), self.kernel.in_rows.index(name) * w))
        return _op_array(ops)

    def inputs_unchanged(self, ops: tuple[Any, int]) -> bool:
        return self._run(ops, self.x_ptr) == 0


def source(view: MechView, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(array, index or None) an input row is gathered from."""
    if name == "v":
        return view.vec_v, view.node_index
    if name == "w":
        return view.weight, None
    if name == "c.celsius":
        return view.temperature, view.node_index
    if name.startswith("p."):
        return view.p[name[2:]], None
    if name.startswith("s."):
        return view.s[name[2:]], None
    if name.startswith("c."):
        for key, ion, arr in ion_inputs([iv.info for iv in view.ions.values()]):
            if key == name[2:]:
                src = getattr(view.ions[ion], arr)
                if src is None:
                    raise PycatError(f"mechanism '{view.mechanism}': ion '{ion}' has no {arr}")
                return src, view.ions[ion].index
    raise PycatError(f"mechanism '{view.mechanism}': unknown kernel input row {name!r}")


def plan_for(view: MechView, mech: Mechanism, kernel: PackedKernel) -> Plan:
    """The view's plan for this kernel, built on first use."""
    plan = view.cache.get(id(kernel))
    if plan is None:
        plan = view.cache[id(kernel)] = Plan(view, mech, kernel)
    return plan


def run_packed(view: MechView, mech: Mechanism, kernel: PackedKernel) -> None:
    """Gather, call, scatter everything."""
    if view.width == 0:
        return
    plan = plan_for(view, mech, kernel)
    plan.call()
    plan.scatter()
