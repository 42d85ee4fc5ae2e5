"""Cheaper SIMD code for the exact mechanism: rewrites of modcc 0.12.2's C++ that keep its results.

Measured on the IO cell on C4A (K = 12, 64 CVs, AMD EPYC, AVX2): the exact mechanism's own
kernels were 95 % of a gradient run (advance_state 50 %, compute_currents 28 %, the tree
solve 16 %), at an instruction rate far below the arithmetic. Two causes, two rewrites:

- **Masks.** A guarded member (covered fraction > 0) is a masked block in modcc's SIMD code:
  every assignment to a temporary is a blend and every store a masked store
  (``vmaskmovpd``, slow on AMD). A member's own temporaries are read only inside its block,
  so :func:`unmask_member_temporaries` computes them on every lane (lanes without the member
  compute values nobody reads), :func:`store_member_fields_unmasked` stores its own fields
  (states, σ) on every lane in the per-step kernels (only its own unmasked temporaries read
  them), and :func:`blend_masked_stores` turns each masked store left into load, blend, full
  store (the other lanes get back what they held). Accumulators shared by the members (the
  current, the sources, dG) stay masked.
- **Layout.** Arbor keeps each per-CV field in its own array, all fields one after another
  with a stride of the padded CV count: 512 bytes on C4A, so the ~300 σ arrays a chunk of 4
  CVs touches fall into 8 of the 64 L1 sets. :func:`chunk_major_sigma` lays the members'
  generated fields (σ, their start values, dG) out chunk by chunk inside the same memory:
  field j of CVs [c·W, c·W + W) at ``base + c·W·N + j·W``, so one chunk's fields are
  contiguous. The transposition runs at the start of ``init`` (a layout flag, a field of its
  own, says whether Arbor has reset the memory since); where Arbor's fields are not one
  block of equal strides, the code keeps Arbor's layout (same kernels, index multiplier 1).

Each rewrite refuses code without the constructs it rewrites, so a changed modcc stops the
build instead of silently running slower or wrong.
"""
from __future__ import annotations

import re
import string

from gradgen.errors import GradgenError
from gradgen.protocol import (
    EXACT_CHUNKED,
    EXACT_KEEP,
    EXACT_LAYOUT,
    EXACT_LAYOUT_FUNCTION,
    EXACT_STEP,
    member_fields,
    member_prefix,
)
from gradgen.targets.arbor.exact_patch import MEMBER_GUARD, MODCC_HINT


def _guard_masks(text: str, coverages: list[str]) -> set[str]:
    return {m["mask"] for m in MEMBER_GUARD.finditer(text) if m["coverage"] in coverages}


def unmask_member_temporaries(text: str, coverages: list[str], members: list[str], where: str) -> str:
    """Assignments to a member's temporaries (its prefix, or modcc's ``r_N_``/``llN_`` of an
    inlined function) under that member's guard mask, unmasked. Its generated names
    (:func:`gradgen.protocol.member_fields`: dG, read outside the guard) stay masked."""
    masks = _guard_masks(text, coverages)
    names = "|".join(f"(?!{re.escape(member_fields(m))}){re.escape(member_prefix(m))}\\w+" for m in members)
    names += r"|r_\d+_|ll\d+_"
    pattern = re.compile(rf"S::where\((?P<mask>mask_\d+_), (?P<name>{names})\) = ")
    out, count = pattern.subn(lambda m: f"{m['name']} = " if m["mask"] in masks else m[0], text)
    if not masks or count == 0:
        raise GradgenError(f"{where}: no masked member temporaries in modcc's SIMD code", hint=MODCC_HINT)
    return out


_MASKED_STORE = re.compile(r"^(?P<indent>\s*)indirect\((?P<array>_pp_var_\w+)\+index_, simd_width_\) = "
                           r"S::where\((?P<mask>mask_\d+_), (?P<value>.*)\);$", re.M)


_KERNELS = re.compile(r"^static void (advance_state|compute_currents)\(arb_mechanism_ppack\* pp\) \{$.*?^\}$",
                      re.M | re.S)


def store_member_fields_unmasked(text: str, coverages: list[str], members: list[str], where: str) -> str:
    """In the per-step kernels, a member's own per-CV fields (its states, σ, ASSIGNED values)
    stored on every lane of its chunk. Lanes without the member then hold values computed from
    that lane's v and the member's own fields, which only the member's unmasked temporaries
    read; every sum that leaves the member (current, conductance, sources, dG) stays masked.
    ``init`` keeps its masked stores (it runs once)."""
    masks = _guard_masks(text, coverages)
    names = "|".join(rf"_pp_var_{re.escape(member_prefix(m))}\w+" for m in members)
    store = re.compile(rf"^(?P<head>\s*indirect\((?:{names})\+index_, simd_width_\) = )"
                       rf"S::where\((?P<mask>mask_\d+_), (?P<value>.*)\);$", re.M)
    count = 0

    def kernel(m: re.Match) -> str:
        nonlocal count
        out, n = store.subn(lambda s: f"{s['head']}{s['value']};" if s["mask"] in masks else s[0], m[0])
        count += n
        return out
    out = _KERNELS.sub(kernel, text)
    if count == 0:
        raise GradgenError(f"{where}: no masked store of a member's field in modcc's SIMD kernels", hint=MODCC_HINT)
    return out


def blend_masked_stores(text: str) -> str:
    """Each masked store of a per-instance field left (see :func:`store_member_fields_unmasked`)
    as load, blend and a full store. There may be none: the members' own stores, which
    :func:`store_member_fields_unmasked` requires, were the masked stores of modcc's code."""
    def blend(m: re.Match) -> str:
        at = f"indirect({m['array']}+index_, simd_width_)"
        return (f"{m['indent']}{{ simd_value {EXACT_KEEP} = simd_cast<simd_value>({at}); "
                f"S::where({m['mask']}, {EXACT_KEEP}) = {m['value']}; {at} = {EXACT_KEEP}; }}")
    return _MASKED_STORE.sub(blend, text)


_FIELD = re.compile(r"(?P<head>\[\[maybe_unused\]\] arb_value_type\* __restrict__ (?P<name>_pp_var_\w+) = )"
                    r"pp->state_vars\[(?P<index>\d+)\];")

_LAYOUT = string.Template("""\
// gradgen: the members' generated fields ($count of them, from state_vars[$first]) chunk by
// chunk (see gradgen/targets/arbor/exact_simd.py); ${flag}[0] is 1 once they are, 2 where
// Arbor's fields are not one block of equal strides (Arbor's layout is kept)
static void ${function}(arb_mechanism_ppack* pp) {
    constexpr arb_size_type n = $count, first = $first;
    constexpr arb_size_type w = S::simd_abi::native_width<double>::value;
    arb_value_type* flag = pp->state_vars[$flag_index];
    if (flag[0] == 1.0 || flag[0] == 2.0) return;  // not reset by Arbor since the last init
    arb_value_type* base = pp->state_vars[first];
    const arb_size_type stride = n > 1 ? (arb_size_type)(pp->state_vars[first + 1] - base) : 0;
    bool block = n > 1 && stride % w == 0 && stride >= (pp->width + w - 1)/w*w;
    for (arb_size_type j = 0; block && j < n; ++j) block = pp->state_vars[first + j] == base + j*stride;
    flag[0] = block ? 1.0 : 2.0;
    if (!block) return;
    static thread_local std::vector<arb_value_type> copy;
    copy.assign(base, base + n*stride);
    for (arb_size_type j = 0; j < n; ++j) {
        for (arb_size_type i = 0; i < stride; ++i) base[(i/w)*w*n + j*w + i%w] = copy[j*stride + i];
    }
}

""")


def _longest_run(fields: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The longest run of consecutive state_vars indices: the fields laid out chunk-major (a
    coupled concentration's σ, declared once outside the members, can split them in two)."""
    runs: list[list[tuple[str, int]]] = []
    for field in fields:
        if runs and field[1] == runs[-1][-1][1] + 1:
            runs[-1].append(field)
        else:
            runs.append([field])
    return max(runs, key=len)


def chunk_major_sigma(text: str, members: list[str], where: str) -> str:
    """The members' generated per-CV fields (:func:`gradgen.protocol.member_fields`) laid out chunk-major."""
    fields = [(m["name"], int(m["index"])) for m in _FIELD.finditer(text)]
    region = [(n, i) for n, i in fields if any(n.startswith(f"_pp_var_{member_fields(m)}") for m in members)]
    flag = [i for n, i in fields if n == f"_pp_var_{EXACT_LAYOUT}"]
    if not region:  # members without states: no per-CV fields of theirs
        return text
    if len(flag) != 1:
        raise GradgenError(f"{where}: the layout flag is not one field of state_vars", hint=MODCC_HINT)
    region = _longest_run(sorted(region, key=lambda f: f[1]))
    indices = [i for _, i in region]
    first, count, names = indices[0], len(indices), {n for n, _ in region}
    head = ("#define PPACK_IFACE_BLOCK \\\n"
            f"[[maybe_unused]] const bool {EXACT_CHUNKED} = pp->state_vars[{flag[0]}][0] == 1.0;\\\n"
            f"[[maybe_unused]] const arb_size_type {EXACT_STEP} = {EXACT_CHUNKED} ? {count} : 1;\\\n")
    if text.count("#define PPACK_IFACE_BLOCK \\\n") != 1 or "static void init(arb_mechanism_ppack* pp) {\n" not in text:
        raise GradgenError(f"{where}: modcc's interface block or init differs", hint=MODCC_HINT)
    text = text.replace("#define PPACK_IFACE_BLOCK \\\n", head, 1)

    def pointer(m: re.Match) -> str:
        i = int(m["index"])
        if m["name"] not in names:
            return m[0]
        return (f"{m['head']}{EXACT_CHUNKED} ? pp->state_vars[{first}] + {i - first}*simd_width_ "
                f": pp->state_vars[{i}];")
    text = _FIELD.sub(pointer, text)
    uses = re.compile(r"(_pp_var_\w+)\+index_\b")
    text = uses.sub(lambda m: f"{m[1]}+index_*{EXACT_STEP}" if m[1] in names else m[0], text)
    stray = [n for n in names if re.search(re.escape(n) + rf"(?!\+index_\*{EXACT_STEP}| = )\W", text)]
    if stray:
        raise GradgenError(f"{where}: {stray[0][8:]} is used in a form the layout rewrite does not know",
                           hint=MODCC_HINT)
    function = _LAYOUT.substitute(count=count, first=first, flag=EXACT_LAYOUT, flag_index=flag[0],
                                  function=EXACT_LAYOUT_FUNCTION)
    text = text.replace("static void init(arb_mechanism_ppack* pp) {\n",
                        f"static void init(arb_mechanism_ppack* pp) {{\n    {EXACT_LAYOUT_FUNCTION}(pp);\n", 1)
    at = text.index("// interface methods")
    return "#include <vector>\n" + text[:at] + function + text[at:]
