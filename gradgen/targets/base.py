"""What a simulator target gives the pipeline: emission, schemes, build and a runtime.

The stages before emission (:mod:`gradgen.nmodl`, :mod:`gradgen.sensitivity`) know no
simulator. A target turns a derived gradient system into that simulator's mechanism
source, builds it, and loads a converted directory as a runnable model. A second simulator
(NEURON) is a second package beside :mod:`gradgen.targets.arbor` with the same interface.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from gradgen.params import ParamRef
    from gradgen.sensitivity.coupling import Coupling
    from gradgen.sensitivity.derive import ContributorSystem


class Target(Protocol):
    """One simulator backend."""

    name: str
    #: The update schemes of the carriers it can emit (the first is the default).
    schemes: tuple[str, ...]
    #: SOLVE method -> the discrete update it applies (:data:`gradgen.sensitivity.discretize.UPDATES`).
    state_updates: Mapping[str, str]
    #: The voltage step of the simulator's numerical slope of a mechanism's current (NEURON:
    #: (I(v + 0.001) − I(v))/0.001), or None where it uses modcc's symbolic conductance
    #: (:func:`gradgen.sensitivity.derive.derive_contributor`).
    slope_step: float | None
    #: Whether a coupled current's reader (a Ca pool) runs its state update before the other
    #: mechanisms (NEURON) rather than with them (Arbor; ``derive_contributor``'s ``pool_first``).
    pool_first: bool
    #: Whether a reversal potential may follow a coupled concentration through Nernst (Arbor's
    #: nernst method, ``sensitivity/nernst.py``); NEURON refuses a Nernst reversal at run time.
    follows_nernst: bool
    #: The kinds of the original's SOLVEs in INITIAL ("kinetic" STEADYSTATE, "linear") that the
    #: gradient mechanism pastes, letting the simulator find those states as it does for the
    #: original (:mod:`gradgen.nmodl.initial_solve`).
    simulator_solves_initial: tuple[str, ...]

    def emit_contributor(self, system: ContributorSystem) -> str:
        """Mechanism source of one gradient (contributor) mechanism."""

    def emit_hub(self, params: Sequence[ParamRef], scheme: str, coupling: Coupling) -> str:
        """Mechanism source of the hub that owns the carriers of ``params``."""

    def build(self, directory: Path) -> Path:
        """Compile a converted directory; returns the loadable artefact."""

    def load(self, directory: Path) -> Any:
        """A converted directory as a runnable model."""
