"""Ion coupling: quantities that connect mechanisms on a CV, and where their sensitivities live.

A Ca channel writes ``ica``; a Ca-dynamics mechanism integrates ``ica`` into its state
``cai``; a Ca-activated K channel reads ``cai``. Each mechanism's gradient system sees
only its own states, so the sensitivities of the shared quantities must be handed over per
CV, or the gradient silently misses every path through the ion. Measured in Arbor 0.12:

- an ion current read in ``advance_state`` (phase B) is the sum the writers computed in
  ``compute_currents`` (phase A) of the same step, in the writers' units (mA/cm²); read
  in ``compute_currents`` it is a partial sum, so coupled currents may only be read by
  state updates;
- a concentration STATE written by a mechanism reaches the ion after *every*
  ``advance_state`` has run: readers in phase B still see the old value, readers in the
  next phase A the new one;
- a diffusive ion's ``Xd`` is a plain per-CV array shared by all mechanisms, visible
  immediately; an ion with diffusivity 0 has no ``Xd``, so stores get a negligible one.

So per parameter θ_k:

- **current store** (:func:`gradgen.protocol.current_store`): every writer of the current adds
  d i/dθ_k at (V^n, s^n, u^n) in phase A; readers use it in phase B; the hub empties it at
  the end of phase B;
- **concentration stores** (:func:`gradgen.protocol.concentration_store`, one
  :func:`gradgen.protocol.concentration_dv_store`): the writer publishes the
  u-free part of dc^{n+1}/dθ_k and ∂c^{n+1}/∂V^{n+1} in phase B (and dc⁰/dθ_k in
  INITIAL); each reader completes dc/dθ_k = gc + gv·u_k in phase A and keeps that value
  for its own phase B, when the writer may already have published the next step's.

A voltage process (a clamp, a limit) sets V after the voltage solve *and* after every state
update, so the states moved with the solved V^{n+1} while the next currents see the set one.
Its gradient version sets u_k as it sets V and adds u_k(solved) − u_k(set) to the **clamp
store** (:func:`gradgen.protocol.clamp_store`), which the hub empties in phase B; the
contributors complete σ = σpre + JV·(u_k + store), with the u their states saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from gradgen.errors import GradgenError
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.protocol import clamp_store, concentration_dv_store, concentration_store, current_store
from gradgen.sensitivity.nernst import followed_reversals

#: Stores must not diffuse, but Arbor gives an ion without diffusivity no ``Xd`` at all.
STORE_DIFFUSIVITY = 1e-30  # m²/s: relative change per step ~ D·dt/h² ≈ 1e-23


@dataclass(frozen=True)
class Coupling:
    """The ion variables that couple the mechanisms of one model."""

    currents: tuple[str, ...] = ()  # e.g. ("ica",): written by some, read by a state update
    concentrations: tuple[str, ...] = ()  # e.g. ("cai",): a STATE of one, read by another
    #: a voltage process sets V after the state updates: clamp stores hand the solved u over
    clamped: bool = False
    #: a reversal potential may follow a coupled concentration (Arbor's nernst method); False
    #: where the target refuses a Nernst reversal instead (NEURON)
    follows_nernst: bool = True

    def followed(self, m: LoweredMechanism) -> dict[str, str]:
        """``m``'s reversal potentials that may follow a coupled concentration: {e: conc}."""
        return followed_reversals(m, set(self.concentrations)) if self.follows_nernst else {}

    def store_ions(self, n_params: int) -> list[str]:
        """Every store ion of this coupling for ``n_params`` parameters."""
        names = [current_store(i, k) for i in self.currents for k in range(n_params)]
        for c in self.concentrations:
            names += [concentration_store(c, k) for k in range(n_params)] + [concentration_dv_store(c)]
        if self.clamped:
            names += [clamp_store(k) for k in range(n_params)]
        return names


def find_coupling(mechanisms: Sequence[LoweredMechanism], follows_nernst: bool = True) -> Coupling:
    """Which ion currents and concentrations pass between the given mechanisms."""
    written_currents = {c.name for m in mechanisms for c in m.currents if c.ion}
    written_concentrations = {c for m in mechanisms for c in m.concentration_writes}
    currents: list[str] = []
    concentrations: list[str] = []
    for m in mechanisms:
        for var in m.ion_reads:
            if var in written_currents and var not in currents:
                _check_current_reader(m, var)
                currents.append(var)
            if var in written_concentrations and var not in concentrations:
                concentrations.append(var)
        for conc in (followed_reversals(m, written_concentrations) if follows_nernst else {}).values():
            if conc not in concentrations:  # a reversal potential that may follow it (nernst)
                concentrations.append(conc)
    clamped = any(m.voltage is not None for m in mechanisms)
    return Coupling(tuple(sorted(currents)), tuple(sorted(concentrations)), clamped, follows_nernst)


def check_single_readers(mechanisms: Sequence[LoweredMechanism], coupling: Coupling) -> None:
    """Where the pool runs first (NEURON), the one reader of a coupled current empties its
    stores after using them: a second reader would see them empty."""
    for c in coupling.currents:
        readers = [m for m in mechanisms if c in m.ion_reads]
        if len(readers) > 1:
            raise GradgenError(f"'{readers[1].name}' reads the ion current '{c}' that '{readers[0].name}' reads too",
                               readers[1].mechanism.pos, hint="the NEURON target hands a coupled current to one reader")


def concentrations_read(m: LoweredMechanism, coupling: Coupling) -> list[str]:
    """Coupled concentrations ``m`` reads: directly, or through a reversal potential that
    follows them (:mod:`gradgen.sensitivity.nernst`)."""
    followed = coupling.followed(m).values()
    return [c for c in coupling.concentrations if c in m.ion_reads or c in followed]


def _check_current_reader(m: LoweredMechanism, var: str) -> None:
    """Coupled currents are only meaningful inside state updates (see the module notes)."""
    symbol_names = {s.name for c in m.currents for s in c.expr.free_symbols}
    symbol_names |= {s.name for e in [*m.initial.values(), *m.initial_equations.values()] for s in e.free_symbols}
    if var in symbol_names:
        raise GradgenError(
            f"'{m.name}' uses the ion current '{var}' outside its state update", m.mechanism.pos,
            hint="Arbor hands a mechanism the summed ion current only in advance_state (the "
                 "DERIVATIVE block); read it there")
