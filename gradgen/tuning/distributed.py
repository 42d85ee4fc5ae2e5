"""Population losses on dask.distributed workers (CMA-ES and DE beyond one process).

Several cells in one Arbor simulation cost N× one cell, so a population only gets faster
with more processes or machines. :class:`DaskPopulation` splits each generation into one
chunk per worker; a worker builds the tuning problem from the config once (converting the
mechanisms into its own folder under the output directory; compiled catalogues come from
the shared cache) and simulates its chunk as side-by-side original cells. The losses are
those of the in-process run: the same cells, simulated independently of their neighbours.

``address=None`` starts a LocalCluster of ``workers`` single-threaded processes; otherwise
``address`` is a running scheduler (``tcp://host:8786``), whose workers must see the same
files (config, morphology, mechanisms, target) at the same paths.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from gradgen.errors import GradgenError

_PROBLEMS: dict[str, object] = {}  # per worker process: token -> TuningProblem


def _chunk_losses(token: str, config, work: str, zs: list[list[float]]) -> list[float]:
    """Runs on a worker: the chunk's losses (builds the problem on first use)."""
    if token not in _PROBLEMS:
        from gradgen.tuning.run import setup

        _PROBLEMS[token] = setup(config, Path(work) / f"worker-{os.getpid()}").problem
    return [e.loss for e in _PROBLEMS[token].population([np.asarray(z) for z in zs])]


class DaskPopulation:
    """A callable: population z-vectors -> losses, evaluated on dask workers."""

    def __init__(self, config, work: Path, address: str | None = None, workers: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise GradgenError("populations on dask workers need dask.distributed",
                               hint="pip install 'gradgen[distributed]'") from None
        self.cluster = None if address else LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(address or self.cluster)
        self.chunks = max(len(self.client.scheduler_info()["workers"]), 1)
        self.token, self.work = uuid.uuid4().hex, str(work)
        self.config = self.client.scatter(config, broadcast=True)

    def __call__(self, zs: Sequence[Sequence[float]]) -> list[float]:
        chunks = [c.tolist() for c in np.array_split(np.asarray(zs, float), self.chunks) if len(c)]
        futures = [self.client.submit(_chunk_losses, self.token, self.config, self.work, chunk,
                                      pure=False) for chunk in chunks]
        return [loss for chunk in self.client.gather(futures) for loss in chunk]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> "DaskPopulation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
