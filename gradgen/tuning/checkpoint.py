"""Optimiser checkpoints as data: one NPZ of finite float arrays and a JSON header, no pickle.

A checkpoint belongs to the run that wrote it: its header holds a description of that run
(tuned parameters, target, protocol, model files, method and settings — see
:func:`problem_description` for a problem built in code, or
:func:`gradgen.tuning.run.run_description` for a config file) and its hash. Resuming under
another description, from a file that does not read back, or from one that holds a
non-finite number is a clear error, never a silent continuation of another run; nothing
non-finite is ever written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gradgen.errors import GradgenError
from gradgen.tuning.problem import TuningProblem

_HINT = "delete it to start afresh, or use a new output directory"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_files(directory: Path) -> dict[str, str]:
    """Hashes of the converted model's mechanisms (gradient and original copies)."""
    files = sorted([*directory.glob("*.mod"), *directory.glob("original/*.mod")])
    return {f.relative_to(directory).as_posix(): _digest(f.read_bytes()) for f in files}


def problem_description(problem: TuningProblem, method: str, settings: dict, extra: dict | None = None) -> dict:
    """Everything that shapes an optimisation run of a problem built in code, except its
    budget (which a resume may raise); ``gradgen tune`` describes its run by the config
    instead (:func:`gradgen.tuning.run.run_description`), before anything is built."""
    return {
        "method": method,
        "settings": settings,
        "parameters": [{"name": p.name, "copies": list(p.copies), "start": repr(p.default),
                        "transform": p.transform, "bounds": [repr(b) for b in p.bounds]}
                       for p in problem.param.parameters],
        "protocols": [json.loads(json.dumps(dataclasses.asdict(p))) for p in problem.protocols.values()],
        "probes": list(problem.sites),
        "targets": [{"protocol": b.protocol, "probe": b.probe, "weight": b.weight,
                     "target": _digest(np.ascontiguousarray(b.target, float).tobytes()),
                     "mask": _digest(np.ascontiguousarray(b.mask, bool).tobytes())}
                    for b in problem.blocks],
        "model": _model_files(problem.model.directory),
        **(extra or {}),
    }


def _finite_json(value: object, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise GradgenError(f"{what} holds a non-finite number; not saved", hint=_HINT) from None


@dataclass
class Checkpoint:
    """Where a run's state is kept, and the run it belongs to.

    ``writer(name)`` yields a temporary path that becomes ``name`` beside ``path`` when the
    block ends (:meth:`gradgen.outputs.OutputDir.replacing`); without one the file is
    replaced through a temporary file in the same folder.
    """

    path: Path
    description: dict
    writer: Callable[[str], AbstractContextManager[Path]] | None = None

    def __post_init__(self) -> None:
        self.description = json.loads(json.dumps(self.description))  # as it reads back

    @property
    def key(self) -> str:
        return _digest(json.dumps(self.description, sort_keys=True).encode())

    def refuse(self, why: str) -> GradgenError:
        """The one-line error about this checkpoint, with the way out."""
        return GradgenError(f"checkpoint {self.path}: {why}", hint=_HINT)

    def load(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """``(header, arrays)`` of this run's checkpoint; None when there is none yet."""
        if self.path.is_symlink():
            raise self.refuse("is a symbolic link, not a checkpoint gradgen wrote")
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {name: np.array(data[name]) for name in data.files}
            header = json.loads(str(arrays.pop("header")))
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            raise self.refuse("cannot be read (truncated, corrupt or not a gradgen checkpoint)") from None
        if not isinstance(header, dict) or header.get("key") != self.key:
            old = header.get("description") if isinstance(header, dict) else None
            old = old if isinstance(old, dict) else {}
            changed = sorted(k for k in {*old, *self.description} if old.get(k) != self.description.get(k))
            raise self.refuse("was written by a run with another configuration"
                              + (f" (differs in: {', '.join(changed)})" if changed else ""))
        if not all(np.all(np.isfinite(a)) for a in arrays.values()):
            raise self.refuse("holds a non-finite number")
        return header, arrays

    def save(self, header: dict, arrays: dict[str, np.ndarray]) -> None:
        """Replace the checkpoint; refuse (without writing) anything non-finite."""
        arrays = {name: np.asarray(a, float) for name, a in arrays.items()}
        if not all(np.all(np.isfinite(a)) for a in arrays.values()):
            raise GradgenError("the optimiser state became non-finite; the checkpoint keeps the "
                               "last finite step", hint="lower the step size or set [tune.bounds]")
        text = _finite_json({**header, "key": self.key, "description": self.description},
                            "the run's history")
        if self.writer is not None:
            with self.writer(self.path.name) as tmp:
                np.savez(tmp, header=np.array(text), **arrays)
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp.npz")
        try:
            np.savez(tmp, header=np.array(text), **arrays)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
