"""Several cells joined by gap junctions, with V and dV/dθ at sites on each.

:meth:`GradientModel.simulate` runs one cell. Gap junctions between cells (the inferior
olive's network) carry dV/dθ from one cell to the other through the junction's gradient
version, which reads u_k on the peer CV (:mod:`gradgen.targets.arbor.process_patch`), so
a θ that binds on one cell has a gradient on every cell joined to it. The cells run in one
Arbor simulation (one cell group: Arbor keeps gap-junction-connected cells together), each
built as :meth:`GradientModel.cell` builds it (the hub design; on its constant-radius
equivalent geometry), with its spike inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import arbor
import numpy as np

from gradgen.errors import GradgenError
from gradgen.protocol import HUB_NAME, hub_state
from gradgen.targets.arbor.blowup import check_finite
from gradgen.targets.arbor.decor import CellSpec, membrane_of
from gradgen.targets.arbor.geometry.cell import cell_geometry
from gradgen.targets.arbor.model import GradientModel, Traces
from gradgen.targets.arbor.recipe import CellsRecipe, regular_schedule
from gradgen.targets.arbor.sites import cv_centre


@dataclass
class Junction:
    """A symmetric gap junction between the junction site labelled ``label_a`` on cell
    ``cell_a`` and ``label_b`` on cell ``cell_b`` (both placed with ``arbor.junction``)."""

    cell_a: int
    label_a: str
    cell_b: int
    label_b: str
    weight: float = 1.0

    def connections(self) -> list[tuple[int, arbor.gap_junction_connection]]:
        return [(self.cell_a, arbor.gap_junction_connection((self.cell_b, self.label_b), self.label_a, self.weight)),
                (self.cell_b, arbor.gap_junction_connection((self.cell_a, self.label_a), self.label_b, self.weight))]


def simulate_network(model: GradientModel, specs: Sequence[CellSpec], junctions: Sequence[Junction],
                     sites: Sequence[Sequence[str]], t_end: float, dt: float, gradients: bool = True,
                     values: dict[str, float] | None = None) -> list[Traces]:
    """Run the cells ``specs`` joined by ``junctions``; per cell, V (and dV/dθ) at its ``sites``
    (each moved to the centre of its CV, as :meth:`GradientModel.simulation` does)."""
    if len(sites) != len(specs):
        raise GradgenError("give one list of probe sites per cell")
    ions = [spec.ions for spec in specs]
    if any(i != ions[0] for i in ions):
        raise GradgenError("the cells of a network must declare the same extra ion species",
                           hint="give every CellSpec the same `ions`")
    base = arbor.neuron_cable_properties()
    for ion, settings in ions[0].items():
        base.set_ion(ion, **settings)
    cells, probes, tags = [], [], []
    for spec, cell_sites in zip(specs, sites):
        membrane = membrane_of(spec, base)
        if gradients and model.carrier_geometry == "exact":
            geo = cell_geometry(spec, membrane).equivalent
            cell_sites = [geo.map_locset(site) for site in cell_sites]
        cell = model.cell(spec, gradients, values, base)
        centres = [cv_centre(cell, site) for site in cell_sites]
        cell_probes, cell_tags = [], []
        for i, site in enumerate(centres):
            cell_probes.append(arbor.cable_probe_membrane_voltage(site, f"v{i}"))
            cell_tags.append([f"v{i}"])
            for k in range(len(model.params) if gradients else 0):
                tag = f"u{i}_{k}"
                cell_probes.append(arbor.cable_probe_density_state(site, HUB_NAME, hub_state(k), tag))
                cell_tags[-1].append(tag)
        cells.append(cell)
        probes.append(cell_probes)
        tags.append(cell_tags)
    gap_junctions: list[list[arbor.gap_junction_connection]] = [[] for _ in specs]
    for junction in junctions:
        for gid, connection in junction.connections():
            gap_junctions[gid].append(connection)
    recipe = CellsRecipe(cells, model.properties(gradients, base), probes,
                         [model.generators(spec, values) for spec in specs], gap_junctions=gap_junctions)
    keys = [(gid, tag) for gid, cell_tags in enumerate(tags) for site_tags in cell_tags for tag in site_tags]
    recipe.sample_run(keys, t_end, dt, regular_schedule(dt, t_end))
    out = []
    for gid, cell_tags in enumerate(tags):
        t = recipe.samples((gid, cell_tags[0][0]))[:, 0]
        v = np.stack([recipe.samples((gid, site_tags[0]))[:, 1] for site_tags in cell_tags])
        dv = None
        if gradients:
            dv = np.stack([np.stack([recipe.samples((gid, tag))[:, 1] for tag in site_tags[1:]])
                           for site_tags in cell_tags])
        check_finite(t, v, dv, list(sites[gid]))
        out.append(Traces(t, v, dv))
    return out
