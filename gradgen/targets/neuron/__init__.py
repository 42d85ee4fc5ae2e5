"""The NEURON 9 target: NMODL for ``nrnivmodl`` and a small runtime on NEURON's Python API.

:mod:`.emit` renders gradient systems through the templates in ``templates/``, :mod:`.build`
compiles one mechanism library per converted directory (cached by content), :mod:`.model`
swaps a NEURON model's mechanisms for their gradient versions and records V and dV/dθ
(:mod:`.shadow` builds the shadow cells that carry dV/dθ by default, :mod:`.point_processes`
swaps synapses together with their NetCons),
:mod:`.check` compares them with finite differences of the originals, and
:func:`instrument` does convert, build and swap in one call for a model built in NEURON.
Only the runtime imports ``neuron``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from gradgen.sensitivity.discretize import NEURON_METHODS
from gradgen.targets.neuron import emit

if TYPE_CHECKING:
    from gradgen.params import ParamRef
    from gradgen.sensitivity.coupling import Coupling
    from gradgen.sensitivity.derive import ContributorSystem
    from gradgen.targets.neuron.model import NeuronModel


class NeuronTarget:
    """NEURON through nrnivmodl-compiled mechanisms; u_k is the voltage of a shadow copy of
    the cell (scheme ``shadow``) or an ion's inside concentration moved by NEURON's
    longitudinal diffusion (``corrected``, ``naive``)."""

    name = "neuron"
    schemes = emit.SCHEMES
    state_updates = NEURON_METHODS  # cnexp is the exact exponential, derivimplicit backward Euler
    pool_first = True  # NEURON runs a mechanism that writes a concentration first
    follows_nernst = False  # a Nernst eca is refused at run time (targets/neuron/model.py)
    simulator_solves_initial = ("kinetic", "linear")  # NEURON's STEADYSTATE iteration, pasted (nmodl/initial_solve.py)
    slope_step = 0.001  # NEURON's slope of a mechanism's current: (I(v + 0.001) − I(v))/0.001

    def emit_contributor(self, system: ContributorSystem) -> str:
        return emit.emit_contributor(system)

    def emit_hub(self, params: Sequence[ParamRef], scheme: str, coupling: Coupling) -> str:
        return emit.emit_hub(list(params), scheme, coupling)

    def build(self, directory: Path) -> Path:
        from gradgen.targets.neuron.build import build_directory

        return build_directory(directory)

    def load(self, directory: Path) -> NeuronModel:
        from gradgen.targets.neuron.model import NeuronModel

        return NeuronModel.load(directory)


TARGET = NeuronTarget()


def instrument(h, params: Sequence[str], mod_files: Sequence[str | Path], out_dir: str | Path,
               sections=None, regions=None, scheme: str | None = None) -> NeuronModel:
    """Gradients for a model already built in NEURON (hoc or Python), in place.

    ``mod_files`` are the files the model's mechanisms were compiled from (all of those on
    the instrumented sections: a mechanism without a gradient version is refused);
    ``params`` name θ (``mech.param`` or ``mech.param@region``, a region being a list of
    sections in ``regions``). The mechanisms are swapped for their gradient versions
    keeping every parameter value the model set; returns the model, whose
    :meth:`~gradgen.targets.neuron.model.NeuronModel.run` records V and dV/dθ. ``h`` is the
    model's NEURON; the converted directory is written to ``out_dir``; ``scheme`` picks the
    carrier (default ``shadow``: copies of the cells, exact; ``corrected``: the ion carrier).
    """
    from gradgen.convert import convert
    from gradgen.params import parse_param_list
    from gradgen.targets.neuron.model import NeuronModel

    convert(list(mod_files), out_dir, parse_param_list(list(params)), scheme=scheme, target="neuron")
    model = NeuronModel.load(out_dir)
    model.swap(sections, regions)
    return model
