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
    #: a LINEAR solve in INITIAL is pasted and put in the original's column order
    #: (targets/arbor/modcc_order.py); a KINETIC STEADYSTATE keeps gradgen's elimination
    simulator_solves_initial = ("linear",)
    slope_step = None  # modcc's conductance, which Arbor's step uses

    def emit_contributor(self, system: ContributorSystem) -> str:
        text = emit.emit_contributor(system)
        pasted = system.initial_solve
        low = system.lowered
        if pasted and len(pasted.statements) == 1:  # modcc orders the columns by its symbol table
            from gradgen.targets.arbor.modcc_order import match_original_order

            block = pasted.statements[0].split()[1]
            text = match_original_order(text, low.mechanism.text, block, list(low.initial_equations))
        return text

    def emit_hub(self, params: Sequence[ParamRef], scheme: str, coupling: Coupling) -> str:
        return emit.emit_hub(list(params), scheme, coupling)

    def build(self, directory: Path) -> Path:
        from gradgen.targets.arbor.build import build_directory

        return build_directory(directory, "gradgen")

    def load(self, directory: Path) -> GradientModel:
        from gradgen.targets.arbor.model import GradientModel

        return GradientModel.load(directory)


TARGET = ArborTarget()
