"""One jitted call per mechanism method: pack inputs into one array, unpack outputs.

JAX's per-call cost grows with the number of arguments and results, and every numpy
operation costs about a microsecond, so a method is run as ``Y = kernel(X, *extra)``:

- ``X`` has one row per input name (``v``, ``w`` = weight, ``p.NAME``, ``s.NAME``,
  ``c.KEY`` = ion reads and ``celsius``) and one column per instance. The weight,
  parameter and state rows are copied from Arbor's buffer in one operation (they are one
  contiguous block there).
- ``Y`` has one row per output: ``i``/``g`` (mA/cm², S/cm²: added to the membrane),
  ``ion_i.ION`` (added to the ion's current), ``xd.ION`` (added to Xd, weighted like a
  current), ``s.NAME`` (assigned to the state). Weights are applied inside the kernel.

The per-instance function sees a dict {row name: scalar} and returns a dict
{output name: scalar}; it is vmapped over instances.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .channel import ion_inputs
from .errors import PycatError
from .mechanism import Mechanism
from .views import MechView


def input_rows(mech: Mechanism, reads: Sequence[str] | None = None) -> list[str]:
    """Input rows: v, w, parameters, states (Arbor's block order), then ``c.`` reads.

    ``reads`` defaults to every ion quantity the mechanism declares, plus ``celsius``.
    """
    rows = ["v", "w"]
    rows += [f"p.{f.name}" for f in mech.parameters]
    rows += [f"s.{f.name}" for f in mech.states]
    if reads is None:
        reads = [key for key, _, _ in ion_inputs(mech.ions)] + ["celsius"]
    rows += [f"c.{key}" for key in reads]
    return rows


class PackedKernel:
    """A per-instance function turned into ``Y = kernel(X, *extra)``, jitted once."""

    def __init__(self, fn: Callable[..., dict], in_rows: Sequence[str], out_rows: Sequence[str],
                 n_extra: int = 0):
        self.in_rows = list(in_rows)
        self.out_rows = list(out_rows)
        rows_in, rows_out = self.in_rows, self.out_rows

        def column(x: Any, *extra: Any) -> Any:
            d = {name: x[k] for k, name in enumerate(rows_in)}
            out = fn(d, *extra)
            w = d["w"]
            vals = []
            for name in rows_out:
                val = out[name]
                if name in ("i", "g") or name.startswith("ion_i."):
                    val = 10.0 * w * val  # mA/cm² -> A/m², S/cm² -> kS/m², times CV fraction
                elif name.startswith("xd."):
                    val = w * val
                vals.append(jnp.asarray(val, dtype=jnp.float64))
            return jnp.stack(vals)

        self.fn = jax.jit(jax.vmap(column, in_axes=(1,) + (None,) * n_extra, out_axes=1))

    def __call__(self, X: np.ndarray, *extra: Any) -> np.ndarray:
        return np.asarray(self.fn(X, *extra))


class Plan:
    """Where each row of X comes from and where each row of Y goes, for one view."""

    def __init__(self, view: MechView, mech: Mechanism, kernel: PackedKernel):
        w = view.width
        self.X = np.empty((len(kernel.in_rows), w))
        self.gathers: list[tuple[np.ndarray, Any, int]] = []
        self.block_rows: tuple[int, int] | None = None
        n_ps = len(mech.parameters) + len(mech.states)
        rows = kernel.in_rows
        if view.block is not None and rows[1:2 + n_ps] == input_rows(mech)[1:2 + n_ps]:
            self.block_rows = (1, 2 + n_ps)
            self.block = view.block
            skip = set(range(1, 2 + n_ps))
        else:
            skip = set()
        for r, name in enumerate(rows):
            if r in skip:
                continue
            self.gathers.append(self._source(view, name) + (r,))
        self.adds: list[tuple[np.ndarray, Any, bool, int]] = []
        self.assigns: list[tuple[np.ndarray, int]] = []
        for r, name in enumerate(kernel.out_rows):
            if name == "i":
                self.adds.append((view.vec_i, view.node_sel, view.unique, r))
            elif name == "g":
                self.adds.append((view.vec_g, view.node_sel, view.unique, r))
            elif name.startswith("ion_i."):
                ion = view._ion(name[6:])
                self.adds.append((ion.i, ion.sel, ion.unique, r))
            elif name.startswith("xd."):
                ion = view._ion(name[3:])
                if ion.xd is None:
                    raise PycatError(f"mechanism '{view.mechanism}': ion '{ion.name}' is not diffusive")
                self.adds.append((ion.xd, ion.sel, ion.unique, r))
            elif name.startswith("s."):
                self.assigns.append((view.s[name[2:]], r))
            else:
                raise PycatError(f"unknown kernel output row {name!r}")
        # states written as one run in declaration order: one copy into Arbor's block
        self.state_copy: tuple[np.ndarray, int, int] | None = None
        out_states = [(r, name[2:]) for r, name in enumerate(kernel.out_rows) if name.startswith("s.")]
        if view.block is not None and out_states:
            order = [f.name for f in mech.states]
            r0, first = out_states[0]
            i0 = order.index(first)
            run = [(r0 + j, order[i0 + j]) for j in range(len(out_states)) if i0 + j < len(order)]
            if run == out_states:
                p0 = 1 + len(mech.parameters) + i0
                self.state_copy = (view.block[p0:p0 + len(run)], r0, r0 + len(run))
                self.assigns = []

    @staticmethod
    def _source(view: MechView, name: str) -> tuple[np.ndarray, Any]:
        if name == "v":
            return view.vec_v, view.node_sel
        if name == "w":
            return view.weight, slice(None)
        if name == "c.celsius":
            return view.temperature, view.node_sel
        if name.startswith("p."):
            return view.p[name[2:]], slice(None)
        if name.startswith("s."):
            return view.s[name[2:]], slice(None)
        if name.startswith("c."):
            key = name[2:]
            for k, ion, arr in ion_inputs([view_ion.info for view_ion in view.ions.values()]):
                if k == key:
                    src = getattr(view.ions[ion], arr)
                    if src is None:
                        raise PycatError(f"mechanism '{view.mechanism}': ion '{ion}' has no {arr}")
                    return src, view.ions[ion].sel
        raise PycatError(f"mechanism '{view.mechanism}': unknown kernel input row {name!r}")

    def fill(self) -> np.ndarray:
        X = self.X
        for src, sel, r in self.gathers:
            X[r] = src[sel]
        if self.block_rows is not None:
            X[self.block_rows[0]:self.block_rows[1]] = self.block
        return X

    def scatter(self, Y: np.ndarray) -> None:
        for target, sel, unique, r in self.adds:
            if unique:
                target[sel] += Y[r]
            else:
                np.add.at(target, sel, Y[r])
        if self.state_copy is not None:
            dst, a, b = self.state_copy
            dst[...] = Y[a:b]
        for arr, r in self.assigns:
            arr[...] = Y[r]


def run_packed(view: MechView, mech: Mechanism, kernel: PackedKernel, *extra: Any) -> None:
    """Gather, call, scatter; the plan is built once per view and kernel."""
    plan = view.cache.get(id(kernel))
    if plan is None:
        plan = view.cache[id(kernel)] = Plan(view, mech, kernel)
    plan.scatter(kernel(plan.fill(), *extra))
