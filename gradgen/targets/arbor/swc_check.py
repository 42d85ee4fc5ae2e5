"""Check an SWC file row by row before Arbor reads it.

Arbor's SWC loaders skip what they cannot parse: an empty or garbage file becomes an empty
morphology, and a ``nan`` coordinate silently cuts the tree to one branch. Each row must be
``id tag x y z radius parent`` with integer id, tag and parent, finite coordinates, a
positive radius, and a parent that is -1 (the root) or a row above it.
"""
from __future__ import annotations

import math
from pathlib import Path

from gradgen.errors import GradgenError, SourcePos

_HINT = "SWC rows are: id tag x y z radius parent (parent -1 for the root, else an earlier id)"


def check_swc(path: Path | str) -> None:
    """Raise a GradgenError at the first row that is not a valid SWC sample."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise GradgenError("not a text file (undecodable bytes)", SourcePos(str(path), line, 1),
                           hint=_HINT) from None
    ids: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        pos = SourcePos(str(path), number, len(line) - len(line.lstrip()) + 1)
        fields = body.split()
        if len(fields) != 7:
            raise GradgenError(f"an SWC row has 7 fields, this one {len(fields)}", pos, hint=_HINT)
        try:
            sample, tag, parent = int(fields[0]), int(fields[1]), int(fields[6])
            x, y, z, radius = (float(f) for f in fields[2:6])
        except ValueError:
            raise GradgenError(f"not an SWC row: {body.strip()[:60]!r}", pos, hint=_HINT) from None
        if not all(math.isfinite(c) for c in (x, y, z, radius)):
            raise GradgenError(f"sample {sample} has a coordinate or radius that is not finite",
                               pos, hint=_HINT)
        if radius <= 0:
            raise GradgenError(f"sample {sample} has radius {radius:g}; it must be positive", pos,
                               hint=_HINT)
        if sample in ids:
            raise GradgenError(f"sample id {sample} appears twice", pos, hint=_HINT)
        if parent != -1 and parent not in ids:
            raise GradgenError(f"sample {sample}: parent {parent} is not a sample above it", pos,
                               hint=_HINT)
        if tag < 1:  # Arbor's loaders refuse tag 0 (undefined) and negative tags
            raise GradgenError(f"sample {sample} has tag {tag}; tags are positive (1 soma, "
                               "2 axon, 3 dendrite, 4 apical dendrite, ...)", pos, hint=_HINT)
        ids.add(sample)
    if not ids:
        raise GradgenError("the SWC file has no samples", SourcePos(str(path), 1, 1), hint=_HINT)
