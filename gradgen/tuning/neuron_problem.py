"""`gradgen tune` with ``[model] target = "neuron"``: the tuning problem simulated in NEURON.

The cell is the config's SWC file read by NEURON's Import3d, its regions by section type
(soma, axon, dend = dend and apic, all), the mechanisms painted as the original files
compiled by nrnivmodl and then swapped for their gradient versions (the shadow carrier:
dV/dθ is the derivative of NEURON's own step). ``cv_policy`` becomes each section's
``nseg``: ``branch:N`` -> N, ``extent:L`` -> the smallest odd number of segments of at most
L µm. Probes and stimuli are region names (the middle of the region's first section). Every
run, targets and populations included, is the gradient model (with or without its
carriers recorded): NEURON holds one gradgen library per process.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gradgen.errors import NonFiniteSimulation
from gradgen.losses import LOSSES
from gradgen.protocol import original_name
from gradgen.targets.neuron.check import NeuronCell, set_values
from gradgen.targets.neuron.model import NeuronModel
from gradgen.tuning.config import TuneConfig
from gradgen.tuning.params import Parameterisation
from gradgen.tuning.problem import Evaluation, Protocol, TuningProblem

#: Import3d's section names per region of the config (SWC tags 1, 2, 3 and 4)
_REGION_SECTIONS = {"soma": ("soma",), "axon": ("axon",), "dend": ("dend", "apic")}


def segments_per_section(policy: str, length: float) -> int:
    """NEURON's ``nseg`` for a section of ``length`` µm under the config's ``cv_policy``."""
    kind, _, value = policy.partition(":")
    if kind == "branch":
        return int(float(value))
    return max(1, 2 * math.ceil((length / float(value) - 1) / 2) + 1)


def build_cell(h: Any, config: TuneConfig) -> NeuronCell:
    """The config's cell in NEURON with the ORIGINAL mechanisms and [model.values]."""
    h.load_file("import3d.hoc")
    reader = h.Import3d_SWC_read()
    reader.quiet = 1
    reader.input(str(config.morphology))
    h.Import3d_GUI(reader, 0).instantiate(None)
    sections = list(h.allsec())
    regions = {name: [s for s in sections if s.name().split("[")[0] in prefixes]
               for name, prefixes in _REGION_SECTIONS.items()}
    regions["all"] = sections
    for sec in sections:
        sec.nseg = segments_per_section(config.cv_policy, sec.L)
        sec.cm, sec.Ra = config.cm, config.rL
    for region, names in config.paint.items():
        for sec in regions[region]:
            for name in names:
                sec.insert(original_name(name))
                for key, value in config.values.items():
                    mech, _, param = key.partition(".")
                    if mech == name:
                        for seg in sec:
                            setattr(getattr(seg, original_name(name)), param, value)
    return NeuronCell(sections, [regions[config.probe][0](0.5)], regions)


@dataclass
class _Sampled:
    v: np.ndarray  # [site, sample]
    dv: np.ndarray  # [site, k, sample]


class NeuronProblem(TuningProblem):
    """A :class:`TuningProblem` whose runs are NEURON runs of the instrumented cell; each
    protocol's stimuli are IClamps on it, switched on only in that protocol's runs."""

    def __init__(self, model: NeuronModel, cell: NeuronCell, protocols: Sequence[Protocol],
                 parameterisation: Parameterisation, loss=LOSSES["least_squares"], v_init: float = -65.0):
        self.cell, self.v_init = cell, v_init
        super().__init__(model, cell, [f"site {i}" for i in range(len(cell.sites))], protocols,
                         parameterisation, loss=loss)

    def prepare(self, protocol: Protocol, spec: Any) -> list[tuple[Any, float]]:
        """The protocol's IClamps (amplitude 0 until its run) and their amplitudes (nA)."""
        clamps = []
        for s in protocol.stimuli:
            clamp = self.model.h.IClamp(self.cell.regions[s.location][0](0.5))
            clamp.delay, clamp.dur, clamp.amp = s.delay, s.duration, 0.0
            clamps.append((clamp, s.amplitude))
        return clamps

    def _run(self, name: str, values: Mapping[str, float], gradients: bool) -> _Sampled:
        for other, clamps in self._specs.items():
            for clamp, amplitude in clamps:
                clamp.amp = amplitude if other == name else 0.0
        set_values(self.model, self.cell, values, gradient=True)
        p = self.protocols[name]
        traces = self.model.run(self.cell.sites, p.t_end, p.dt, self.v_init, gradients)
        index = np.rint(p.times() / p.dt).astype(int)
        v, dv = traces.v[:, index], traces.u[:, :, index]
        bad = ~np.isfinite(v).all(axis=0) | ~np.isfinite(dv).all(axis=(0, 1))
        if bad.any():
            raise NonFiniteSimulation("V or dV/dθ", float(p.times()[np.argmax(bad)]), "the probe")
        return _Sampled(v, dv)

    def population(self, zs: Sequence[Sequence[float]], threads: int = 1) -> list[Evaluation]:
        """Losses of many parameter vectors, one NEURON run each (V only)."""
        out = []
        for z in zs:
            try:
                v = self.voltages(self.param.model_values(z))
            except NonFiniteSimulation:
                out.append(Evaluation(math.inf, np.full(len(self.protocol.times()), np.nan)))
                continue
            b = self.blocks[0]
            out.append(Evaluation(self.loss_of_voltages(v), v[b.protocol][b.probe], voltages=v))
        return out


def neuron_problem(config: TuneConfig, model_dir: Path, protocols: Sequence[Protocol],
                   parameterisation: Callable[[dict], Parameterisation]) -> NeuronProblem:
    """The config's problem in NEURON, from the directory ``convert --target neuron`` wrote."""
    model = NeuronModel.load(model_dir)
    cell = build_cell(model.h, config)
    model.swap(cell.sections, cell.regions)
    return NeuronProblem(model, cell, protocols, parameterisation(model.defaults), LOSSES[config.loss],
                         config.v_init)
