"""The Arbor 0.12 target: NMODL for modcc, catalogues, and the runtime on Arbor's Python API.

:mod:`.emit` renders gradient systems through the Jinja templates in ``templates/``,
:mod:`.build` compiles catalogues (cached by content), :mod:`.translate` writes NEURON
dialect files as Arbor NMODL. The runtime: :mod:`.decor` (the user's cell description),
:mod:`.model` (:class:`~.model.GradientModel`), :mod:`.recipe` (the one recipe), :mod:`.sites`,
:mod:`.morphology` (SWC files) and :mod:`.geometry` (the constant-radius equivalent cell).
Only the runtime and the build import ``arbor``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from gradgen.sensitivity.discretize import MODCC_METHODS
from gradgen.targets.arbor import emit

if TYPE_CHECKING:
    from gradgen.params import ParamRef
    from gradgen.sensitivity.coupling import Coupling
    from gradgen.sensitivity.derive import ContributorSystem
    from gradgen.targets.arbor.model import GradientModel


class ArborTarget:
    """Arbor through modcc-compiled NMODL mechanisms and diffusive-ion carriers."""

    name = "arbor"
    schemes = emit.SCHEMES
    state_updates = MODCC_METHODS  # modcc: cnexp (Padé) and sparse (backward Euler) only
    pool_first = False
    follows_nernst = True
    #: Not for modcc: the original's LINEAR solve pasted into a gradient mechanism (its unknowns
    #: even permuted to modcc's column order of the original, which follows its symbol hash
    #: map) still rounds differently: making the PARAMETERs RANGE alone moves allen/NaV's
    #: ill-conditioned initial states by 4e-10 (measured, nmodl/initial_solve.py)
    simulator_solves_initial = False
    slope_step = None  # modcc's conductance, which Arbor's step uses

    def emit_contributor(self, system: ContributorSystem) -> str:
        return emit.emit_contributor(system)

    def emit_hub(self, params: Sequence[ParamRef], scheme: str, coupling: Coupling) -> str:
        return emit.emit_hub(list(params), scheme, coupling)

    def build(self, directory: Path) -> Path:
        from gradgen.targets.arbor.build import build_directory

        return build_directory(directory, "gradgen")

    def load(self, directory: Path) -> GradientModel:
        from gradgen.targets.arbor.model import GradientModel

        return GradientModel.load(directory)


TARGET = ArborTarget()
