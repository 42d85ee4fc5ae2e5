"""Writing into an output directory without ever touching a file gradgen did not write.

An output directory is either new (or empty) or one gradgen made: it holds the ownership
record ``.gradgen-output`` (JSON: the files gradgen wrote there) or, from versions before
the record, a convert manifest. Anything else — a directory with the user's files, a
regular file, a symbolic link — is refused with one line and a hint. Inside its own
directory gradgen replaces only the files of its record, each atomically (a temporary file
beside it, then ``os.replace``), never writes an input, never follows a symbolic link and
leaves every other file (the user's extras) alone.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

from gradgen.errors import GradgenError
from gradgen.protocol import MANIFEST
from gradgen.version import __version__

#: the ownership record in every directory gradgen writes
OWNER_FILE = ".gradgen-output"
_HINT = "choose a new directory (gradgen creates it) or one that gradgen wrote before"


def _refuse(path: Path, why: str, hint: str = _HINT) -> GradgenError:
    return GradgenError(f"refusing to write to {path}: {why}", hint=hint)


def _relative(name: str) -> str | None:
    """``name`` as a clean path inside a directory, or None if it points anywhere else."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") for p in pure.parts):
        return None
    return pure.as_posix()


def _json_file(path: Path) -> object | None:
    """The JSON content of a regular file (never through a link), or None."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _record_of(directory: Path) -> set[str] | None:
    """The files gradgen wrote in ``directory``, or None if gradgen did not make it."""
    record = _json_file(directory / OWNER_FILE)
    if isinstance(record, dict) and isinstance(record.get("files"), list):
        names = [_relative(n) if isinstance(n, str) else None for n in record["files"]]
        return {n for n in names if n is not None and n != OWNER_FILE}
    manifest = _json_file(directory / MANIFEST)  # a convert output written before the record
    if isinstance(manifest, dict) and "gradgen_version" in manifest:
        names = [MANIFEST, f"{manifest.get('hub')}.mod"]
        for entry in manifest.get("mechanisms", []):
            if isinstance(entry, dict):
                names += [f"{entry.get('gradient')}.mod", str(entry.get("source_copy"))]
        return {n for n in map(_relative, names) if n is not None}
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class OutputDir:
    """A directory gradgen owns (see the module docstring); created by :meth:`claim`."""

    def __init__(self, path: Path, owned: set[str], inputs: Sequence[Path], created: list[Path]):
        self.path, self.owned, self.inputs, self._created = path, owned, list(inputs), created

    @classmethod
    def claim(cls, path: Path | str, inputs: Sequence[Path | str] = ()) -> "OutputDir":
        """Check that gradgen may write into ``path`` and create it if it is new.

        ``inputs`` are files the command reads; none of them is ever replaced.
        """
        path = Path(os.path.abspath(path))  # the link itself, not where it points
        if path.is_symlink():
            raise _refuse(path, "it is a symbolic link (gradgen does not write through links)",
                          "give the real directory, or a new one")
        if path.exists() and not path.is_dir():
            raise _refuse(path, "it is a file, not a directory", "give a directory name")
        created: list[Path] = []
        if path.is_dir():
            owned = _record_of(path)
            if owned is None:
                if any(path.iterdir()):
                    raise _refuse(path, "it holds files that gradgen did not write")
                owned = set()
        else:
            missing = [path, *(p for p in path.parents if not p.exists())]
            try:
                path.mkdir(parents=True)
            except OSError as error:
                raise _refuse(path, f"cannot create it ({error.strerror})", "check the path") from None
            created = [p for p in reversed(missing) if p.is_dir()]
            owned = set()
        return cls(path, owned, [Path(os.path.abspath(p)) for p in inputs], created)

    # -- checks

    def _destination(self, name: str) -> Path:
        """Where ``name`` goes; refuse links, foreign files and inputs; create its folders."""
        clean = _relative(name)
        if clean is None or clean == OWNER_FILE:
            raise GradgenError(f"internal: output name '{name}' leaves its directory")
        dest = self.path / clean
        folder = self.path
        for part in PurePosixPath(clean).parts[:-1]:
            folder = folder / part
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise _refuse(dest, f"{folder} is a link or a file, not gradgen's folder")
            if not folder.exists():
                folder.mkdir()
                self._created.append(folder)
        if dest.is_symlink() or (dest.exists() and not dest.is_file()):
            raise _refuse(dest, "it is a link or a folder, not a file gradgen wrote")
        if any(dest == i or _same_file(dest, i) for i in self.inputs):
            raise _refuse(dest, "it is one of the inputs", "write the output elsewhere")
        if dest.exists() and clean not in self.owned:
            raise _refuse(dest, "that file was not written by gradgen",
                          "move it away or choose another output directory")
        return dest

    def _no_links_below(self, path: Path) -> bool:
        """Whether no folder between the directory and ``path``, nor ``path``, is a link."""
        return not any(p.is_symlink() for p in [path, *path.parents] if self.path in p.parents)

    # -- writing

    def _temporary(self, dest: Path) -> Path:
        """An empty new file beside ``dest`` with its suffix (numpy and matplotlib read it)."""
        tmp = dest.with_name(f".{dest.name}.gradgen-tmp-{secrets.token_hex(4)}{dest.suffix}")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        return tmp

    def _save_record(self, names: set[str]) -> None:
        dest = self.path / OWNER_FILE
        if dest.is_symlink() or (dest.exists() and not dest.is_file()):
            raise _refuse(dest, "its ownership record is a link or a folder")
        tmp = self._temporary(dest)
        tmp.write_text(json.dumps({"gradgen_version": __version__, "files": sorted(names)},
                                  indent=1) + "\n")
        os.replace(tmp, dest)
        self.owned = set(names)

    def write(self, files: dict[str, str | bytes], replace_all: bool = False) -> None:
        """Write ``{name: content}`` as one step: all files or (on any failure) none.

        ``replace_all`` also removes files gradgen wrote here before that ``files`` lacks
        (a re-conversion must not leave a dropped mechanism behind).
        """
        staged: dict[Path, Path] = {}
        try:
            destinations = {name: self._destination(name) for name in files}
            for name, content in files.items():
                tmp = self._temporary(destinations[name])
                staged[tmp] = destinations[name]
                if isinstance(content, bytes):
                    tmp.write_bytes(content)
                else:
                    tmp.write_text(content)
            names = {_relative(n) for n in files}
            self._save_record(self.owned | names)
        except BaseException as error:
            for tmp in staged:
                tmp.unlink(missing_ok=True)
            self._remove_created()
            if isinstance(error, OSError):
                raise _refuse(self.path, f"writing failed ({error.strerror})", "check the disk") from None
            raise
        for tmp, dest in staged.items():
            os.replace(tmp, dest)
        if replace_all:
            for stale in sorted(self.owned - names):
                path = self.path / stale
                if self._no_links_below(path) and path.is_file():
                    path.unlink()
            self._save_record(names)
        self._created = []

    def write_text(self, name: str, text: str) -> Path:
        """Replace one file atomically; return its path."""
        self.write({name: text})
        return self.path / name

    def mark(self) -> None:
        """Write the ownership record now, before anything else writes into a subfolder."""
        self.write({})

    @contextmanager
    def replacing(self, name: str) -> Iterator[Path]:
        """A temporary path to write ``name`` to (e.g. ``savefig``); moved into place on success."""
        try:
            dest = self._destination(name)
            tmp = self._temporary(dest)
        except OSError as error:
            raise _refuse(self.path / name, f"cannot write ({error.strerror})", "check the disk") from None
        try:
            yield tmp
            self._save_record(self.owned | {_relative(name)})
            os.replace(tmp, dest)
            self._created = []
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_created(self) -> None:
        """Undo a failed first write: folders made by this claim, if they hold nothing else."""
        for folder in reversed(self._created):
            record = folder / OWNER_FILE
            if record.is_file() and not record.is_symlink() and \
                    [p.name for p in folder.iterdir()] == [OWNER_FILE]:
                record.unlink()
            try:
                folder.rmdir()
            except OSError:
                pass
        self._created = []


def write_outputs(path: Path | str, files: dict[str, str | bytes],
                  inputs: Sequence[Path | str] = ()) -> None:
    """Replace the whole output of one command (see :meth:`OutputDir.write`): a failure
    leaves a new directory absent and an existing one as it was."""
    OutputDir.claim(path, inputs).write(files, replace_all=True)


def replace_file(path: Path | str, source: Path, is_ours: Callable[[Path], bool], what: str) -> Path:
    """Copy ``source`` to the single output file ``path`` atomically.

    An existing ``path`` is replaced only when ``is_ours`` recognises it as an earlier
    output of the same kind (``what``), never through a link.
    """
    dest = Path(os.path.abspath(path))
    if dest.is_symlink():
        raise _refuse(dest, "it is a symbolic link (gradgen does not write through links)",
                      "give a new file name")
    if dest.exists() and not (dest.is_file() and is_ours(dest)):
        raise _refuse(dest, f"it exists and is not {what}", "give a new file name")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.gradgen-tmp-{secrets.token_hex(4)}{dest.suffix}")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as error:
        raise _refuse(dest, f"writing failed ({error.strerror})", "check the path and the disk") from None
    return dest
