"""Repair of modcc 0.12's SIMD write of diffusive concentrations, and the check that it applies.

Arbor applies a mechanism's write of a diffusive concentration as an increment,
``Xd += w·(xd_new − xd_old)`` with w the fraction of the CV the mechanism covers, and the
scalar printer emits exactly that (``fma(weight, x − old, old)``). modcc 0.12.2's SIMD
printer does too in its gather/scatter branches, but in the branch for a contiguous chunk of
CVs it emits an assignment::

    indirect(_pp_var_ion_X.diffusive_concentration + ion_X_indexi_, simd_width_) = S::mul(w_, Xd);

which is wrong wherever a density mechanism covers part of a CV (w < 1): measured 6.9–9.5 %
error in dV/dθ with region borders inside CVs. :func:`patch_simd_source` rewrites every such
line into the scalar printer's increment (gather the old value, ``fma(w, x − old, old)``).

:func:`check_simd_writes` refuses generated code with any other form of diffusive-concentration
write outside ``init`` (where a write is an assignment by design), so a modcc that emits
something new fails the build loudly instead of silently skipping the repair.

Point processes are not patched but built scalar (see :mod:`gradgen.targets.arbor.build`): their SIMD
writes use weight 1 instead of w, so the padded lanes of a chunk (copies of the last
instance, weight 0 for currents) add the increment again — up to 4× with AVX2.
"""
from __future__ import annotations

import re

from gradgen.errors import GradgenError
from gradgen.protocol import SIMD_OLD_VALUE

#: The contiguous-chunk assignment of modcc 0.12.2 (one line, as emitted).
CONTIGUOUS_ASSIGNMENT = re.compile(
    r"^(?P<indent>[ \t]*)indirect\((?P<array>_pp_var_ion_\w+\.diffusive_concentration) \+ "
    r"(?P<index>ion_\w+_indexi_), simd_width_\) = S::mul\(w_, (?P<value>\w+)\);$", re.M)

_PATCHED = ("{indent}{{ simd_value OLD; assign(OLD, indirect({array} + {index}, simd_width_)); "
            "indirect({array} + {index}, simd_width_) = S::fma(w_, S::sub({value}, OLD), OLD); }}"
            ).replace("OLD", SIMD_OLD_VALUE)

#: Writes that are already increments: the gather/scatter branches (after ``x = x − old``).
_SCATTER_INCREMENT = re.compile(
    r"^\s*indirect\(_pp_var_ion_\w+\.diffusive_concentration, simd_cast<simd_index>\(ion_\w+_indexi_\), "
    r"simd_width_, index_constraint::(independent|none|constant)\) \+= S::mul\(w_, \w+\);$")
_PATCHED_LINE = re.compile(rf"^\s*\{{ simd_value {SIMD_OLD_VALUE}; assign\({SIMD_OLD_VALUE}, ")
_WRITE = re.compile(r"diffusive_concentration[^;]*\)\s*(\+=|=)\s")
_FUNCTION = re.compile(r"^static void (\w+)\(arb_mechanism_ppack\* pp\)", re.M)


def patch_simd_source(text: str) -> tuple[str, int]:
    """The generated SIMD C++ with every contiguous-chunk assignment made an increment, and
    the number of lines rewritten."""
    return CONTIGUOUS_ASSIGNMENT.subn(lambda m: _PATCHED.format(**m.groupdict()), text)


def check_simd_writes(text: str, where: str) -> None:
    """Refuse patched SIMD code with a diffusive-concentration write of an unknown form."""
    function = ""
    for number, line in enumerate(text.splitlines(), 1):
        found = _FUNCTION.match(line)
        if found:
            function = found.group(1)
            continue
        if function == "init" or not _WRITE.search(line) or "assign(" in line.split("=")[0]:
            continue
        if _PATCHED_LINE.match(line) or _SCATTER_INCREMENT.match(line):
            continue
        raise GradgenError(
            f"{where}:{number}: modcc emitted a diffusive-concentration write gradgen does not "
            f"know in {function or 'unknown function'}: {line.strip()[:160]}",
            hint="this modcc differs from 0.12.2; build without SIMD (vectorize=False) and "
                 "report the modcc version")
