"""The exact carrier's tree solve, inserted into modcc's C++ of the exact mechanism.

NMODL cannot see other CVs, so the solve of every u_k = dV/dθ_k on the cell's CV tree is C++
that gradgen adds to the code modcc generates (scalar or SIMD: both are plain loops over the
instances here). It runs at the start of ``advance_state``, before the members update their
states and σ with the u^{n+1} it leaves in the u_k STATEs, and it is the derivative of
Arbor's own backward-Euler step:

    (C_i/Δt + a_i g_i) u_i⁺ + Σ_f g_f (u_i⁺ − u_j⁺) = (C_i/Δt) u_i − a_i (B_ik + dG_ik (V_i⁺ − V_i))

with B_k and dG_k kept per CV by ``compute_currents`` (with V^n) and V^{n+1} from ``vec_v``,
and g_i read from ``vec_g`` — the total conductance Arbor's voltage solve used in this step,
mechanisms gradgen did not generate included (Arbor zeroes it at the start of the next step).
The tree (parent offsets, face conductances, capacitances, areas) comes in as painted per-CV
parameters (:mod:`gradgen.targets.arbor.exact_carrier`); zero-area fork CVs have no instance,
so each is held by its first child (the holds-a-fork and parent-is-a-fork flags). Units are Arbor's: pF, µm²,
µS, kS/m² (``vec_g``), mA/cm² for the sources (×10 to A/m², as modcc scales currents).

:func:`patch_exact_source` refuses code whose ``advance_state`` does not have the shape modcc
0.12.2 emits, so a changed modcc cannot silently run without the solve.
"""
from __future__ import annotations

import re
import string

from gradgen.errors import GradgenError
from gradgen.protocol import (
    EXACT_DIAGONAL,
    EXACT_FORK_DIAGONAL,
    EXACT_PREVIOUS_VOLTAGE,
    EXACT_LIVE_FUNCTION,
    EXACT_SOLVE_FUNCTION,
    EXACT_VECTOR,
    TREE_PARAMETERS,
    exact_conductance_change,
    exact_source,
    hub_state,
)

#: Bumped whenever the inserted C++ changes, so cached catalogues are rebuilt.
EXACT_PATCH_VERSION = 10
#: What a user can do when modcc's C++ is not the form these patches know.
MODCC_HINT = "this modcc differs from 0.12.2; use carrier='ion' and report the modcc version"

#: modcc 0.12.2's advance_state header (the body follows; it is empty where no member has states).
ADVANCE_STATE = re.compile(r"^static void advance_state\(arb_mechanism_ppack\* pp\) \{\n", re.M)

_SOLVE = string.Template("""\
// gradgen: the exact carrier's tree solve (one LU of the cell's CV matrix, K right-hand sides
// stored per node in vectors of 4 — padded with zeros — so that the K updates of a node are
// vector operations; the fields are read and written one at a time, in order)
typedef arb_value_type ${vec} __attribute__((vector_size(4*sizeof(arb_value_type))));
typedef long long ${vec}i __attribute__((vector_size(4*sizeof(long long))));
#if defined(__clang__)
#define ${vec}_shuffle(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define ${vec}_shuffle(a, b, i, j, k, l) __builtin_shuffle(a, b, ${vec}i{i, j, k, l})
#endif
static inline ${vec} ${vec}_load(const arb_value_type* p) { ${vec} r; std::memcpy(&r, p, sizeof r); return r; }
static inline void ${vec}_store(arb_value_type* p, ${vec} v) { std::memcpy(p, &v, sizeof v); }
// rows r[0..3] (one per field, lanes = 4 nodes) <-> rows per node (lanes = 4 fields)
static inline void ${vec}_transpose(${vec}* r) {
    const ${vec} t0 = ${vec}_shuffle(r[0], r[1], 0, 4, 2, 6), t1 = ${vec}_shuffle(r[0], r[1], 1, 5, 3, 7);
    const ${vec} t2 = ${vec}_shuffle(r[2], r[3], 0, 4, 2, 6), t3 = ${vec}_shuffle(r[2], r[3], 1, 5, 3, 7);
    r[0] = ${vec}_shuffle(t0, t2, 0, 1, 4, 5);
    r[1] = ${vec}_shuffle(t1, t3, 0, 1, 4, 5);
    r[2] = ${vec}_shuffle(t0, t2, 2, 3, 6, 7);
    r[3] = ${vec}_shuffle(t1, t3, 2, 3, 6, 7);
}
static void ${solve}(arb_mechanism_ppack* pp) {
    PPACK_IFACE_BLOCK;
    constexpr arb_size_type K = ${n}, V = (K + 3)/4, KP = 4*V;
    arb_value_type* const u[K] = {${states}};
    const arb_value_type* const b[K] = {${sources}};
    const arb_value_type* const g[K] = {${changes}};
    const arb_size_type n = _pp_var_width;
    static thread_local std::unique_ptr<${vec}[]> buffer;
    static thread_local std::unique_ptr<arb_value_type[]> scalars;
    static thread_local arb_size_type capacity = 0;
    if (capacity < n) {
        capacity = n;
        buffer.reset(new ${vec}[2*n*V]);
        scalars.reset(new arb_value_type[7*n]);
    }
    ${vec}* __restrict__ const X = buffer.get();  // right-hand side, then u, of each CV node
    ${vec}* __restrict__ const Y = X + n*V;       // the same for the fork an instance holds
    arb_value_type* const x = (arb_value_type*)X;
    arb_value_type* __restrict__ const c = scalars.get();  // per node: C/Δt, the sources' scale,
    arb_value_type* __restrict__ const a = c + n;          // and V^{n+1} - V^n
    arb_value_type* __restrict__ const dv = a + n;
    arb_value_type* __restrict__ const r = dv + n;     // per node: its elimination factor,
    arb_value_type* __restrict__ const rf = r + n;     // its fork's, and the inverse pivots
    arb_value_type* __restrict__ const inv = rf + n;
    arb_value_type* __restrict__ const finv = inv + n;
    arb_value_type* const d = _pp_var_${diag};
    arb_value_type* const fd = _pp_var_${fdiag};
    const arb_value_type rate = 1e-3/pp->dt;  // pF/ms -> µS
    auto offset = [](arb_value_type v) { return (arb_size_type)(v + 0.5); };  // painted integers
    for (arb_size_type i = 0; i < n; ++i) {
        const arb_size_type node = _pp_var_node_index[i];
        const arb_value_type ai = 1e-3*_pp_var_$area[i];
        c[i] = rate*_pp_var_$cap[i];
        a[i] = 10.0*ai;
        dv[i] = _pp_var_vec_v[node] - _pp_var_${vn}[i];
        d[i] = c[i] + ai*_pp_var_vec_g[node] + _pp_var_$gf[i];
        fd[i] = _pp_var_$fgf[i];
        X[i*V + V - 1] = ${vec}{};  // the padding
        for (arb_size_type v = 0; v < V; ++v) Y[i*V + v] = ${vec}{};
    }
    arb_size_type i0 = 0;
    for (; i0 + 4 <= n; i0 += 4) {  // 4 nodes at a time: 4 fields read as vectors, transposed
        const ${vec} c4 = ${vec}_load(c + i0), a4 = ${vec}_load(a + i0), dv4 = ${vec}_load(dv + i0);
        for (arb_size_type w = 0; w < V; ++w) {
            ${vec} r[4];
            for (arb_size_type j = 0; j < 4; ++j) {
                const arb_size_type k = 4*w + j;
                r[j] = k < K ? c4*${vec}_load(u[k] + i0) - a4*(${vec}_load(b[k] + i0) + ${vec}_load(g[k] + i0)*dv4)
                             : ${vec}{};
            }
            ${vec}_transpose(r);
            for (arb_size_type j = 0; j < 4; ++j) X[(i0 + j)*V + w] = r[j];
        }
    }
    for (arb_size_type i = i0; i < n; ++i) {
        for (arb_size_type k = 0; k < K; ++k) x[i*KP + k] = c[i]*u[k][i] - a[i]*(b[k][i] + g[k][i]*dv[i]);
    }
    // the pivots first (scalar), so that the divisions are off the vectors' dependency chain
    for (arb_size_type i = n; i-- > 0;) {  // children before parents
        const arb_size_type p = i - offset(_pp_var_$par[i]);
        const bool to_fork = _pp_var_$pf[i] > 0.5;
        r[i] = 0;
        if (p != i || to_fork) {
            const arb_value_type gf = _pp_var_$gf[i];
            r[i] = gf/d[i];
            (to_fork ? fd : d)[p] += gf - r[i]*gf;
        }
        rf[i] = 0;
        if (_pp_var_$hf[i] > 0.5) {  // the fork this instance holds, after its own node
            const arb_size_type q = i - offset(_pp_var_$fpar[i]);
            if (q != i) {
                const arb_value_type gf = _pp_var_$fgf[i];
                rf[i] = gf/fd[i];
                d[q] += gf - rf[i]*gf;
            }
        }
    }
    for (arb_size_type i = 0; i < n; ++i) {
        inv[i] = 1.0/d[i];
        finv[i] = _pp_var_$hf[i] > 0.5 ? 1.0/fd[i] : 0.0;
    }
    for (arb_size_type i = n; i-- > 0;) {  // the right-hand sides, in the same order
        const arb_size_type p = i - offset(_pp_var_$par[i]);
        const bool to_fork = _pp_var_$pf[i] > 0.5;
        if (p != i || to_fork) {
            ${vec}* __restrict__ target = (to_fork ? Y : X) + p*V;
            const ${vec}* __restrict__ source = X + i*V;
            #pragma GCC unroll 8
            for (arb_size_type v = 0; v < V; ++v) target[v] += r[i]*source[v];
        }
        if (_pp_var_$hf[i] > 0.5) {
            const arb_size_type q = i - offset(_pp_var_$fpar[i]);
            if (q != i) {
                ${vec}* __restrict__ target = X + q*V;
                const ${vec}* __restrict__ source = Y + i*V;
                #pragma GCC unroll 8
                for (arb_size_type v = 0; v < V; ++v) target[v] += rf[i]*source[v];
            }
        }
    }
    for (arb_size_type i = 0; i < n; ++i) {  // parents before children
        if (_pp_var_$hf[i] > 0.5) {
            const arb_size_type q = i - offset(_pp_var_$fpar[i]);
            const arb_value_type gf = q != i ? _pp_var_$fgf[i] : 0.0;
            ${vec}* __restrict__ yi = Y + i*V;
            const ${vec}* __restrict__ xq = X + q*V;
            #pragma GCC unroll 8
            for (arb_size_type v = 0; v < V; ++v) yi[v] = (yi[v] + gf*xq[v])*finv[i];
        }
        const arb_size_type p = i - offset(_pp_var_$par[i]);
        const bool to_fork = _pp_var_$pf[i] > 0.5;
        ${vec}* __restrict__ xi = X + i*V;
        if (p == i && !to_fork) {  // a root
            #pragma GCC unroll 8
            for (arb_size_type v = 0; v < V; ++v) xi[v] *= inv[i];
        }
        else {
            const arb_value_type gf = _pp_var_$gf[i];
            const ${vec}* __restrict__ up = (to_fork ? Y : X) + p*V;
            #pragma GCC unroll 8
            for (arb_size_type v = 0; v < V; ++v) xi[v] = (xi[v] + gf*up[v])*inv[i];
        }
    }
    for (i0 = 0; i0 + 4 <= n; i0 += 4) {
        for (arb_size_type w = 0; w < V; ++w) {
            ${vec} r[4] = {X[i0*V + w], X[(i0 + 1)*V + w], X[(i0 + 2)*V + w], X[(i0 + 3)*V + w]};
            ${vec}_transpose(r);
            for (arb_size_type j = 0; j < 4 && 4*w + j < K; ++j) ${vec}_store(u[4*w + j] + i0, r[j]);
        }
    }
    for (arb_size_type i = i0; i < n; ++i) {
        for (arb_size_type k = 0; k < K; ++k) u[k][i] = x[i*KP + k];
    }
}

""")


def solve_source(n_params: int) -> str:
    """The C++ function that solves u_0..u_{K-1} on the tree (uses modcc's ppack macro)."""
    def names(f) -> str:
        return ", ".join(f"_pp_var_{f(k)}" for k in range(n_params))
    tree = dict(zip(("cap", "area", "par", "gf", "pf", "hf", "fpar", "fgf"), TREE_PARAMETERS))
    text = _SOLVE.substitute(solve=EXACT_SOLVE_FUNCTION, vec=EXACT_VECTOR, n=n_params, states=names(hub_state),
                             sources=names(exact_source), changes=names(exact_conductance_change),
                             vn=EXACT_PREVIOUS_VOLTAGE, diag=EXACT_DIAGONAL, fdiag=EXACT_FORK_DIAGONAL, **tree)
    return text


#: modcc 0.12.2's SIMD form of ``if (<member>_gg_c > 0) {`` (a member's guard): a mask, and
#: the field of the covered fraction it tests (without modcc's ``_pp_var_``).
MEMBER_GUARD = re.compile(r"^\s*simd_mask (?P<mask>mask_\d+_) = S::cmp_gt\(simd_cast<simd_value>\(indirect\("
                          r"_pp_var_(?P<coverage>\w+)\+index_, simd_width_\)\), \(double\)0\.\);$", re.M)

_LIVE = """\
// gradgen: whether any lane of a SIMD chunk has the member (its covered fraction > 0)
static inline bool ${live}(const arb_value_type* coverage) {
    for (unsigned j = 0; j < simd_width_; ++j) if (coverage[j] > 0) return true;
    return false;
}

"""


def skip_absent_members(text: str, coverages: list[str], where: str) -> str:
    """SIMD code in which each member's masked block is skipped for chunks without the member.

    modcc's SIMD printer runs both sides of an ``if`` under a mask, so the members' guards of
    a guarded exact mechanism would save nothing; wrapping each guarded block (from its mask
    to the last line that uses the mask) in a C++ ``if`` over the chunk's covered fractions
    skips it where no lane has the member — the masked stores it skips would store nothing.
    """
    lines = text.split("\n")
    opens: dict[int, str] = {}  # line index -> coverage array of the block that starts after it
    closes: dict[int, int] = {}  # line index -> number of blocks that end after it
    for i, line in enumerate(lines):
        found = MEMBER_GUARD.match(line)
        if not found or found.group("coverage") not in coverages:
            continue
        mask = re.compile(rf"\b{found.group('mask')}\b")
        last = i
        for j in range(i + 1, len(lines)):
            if MEMBER_GUARD.match(lines[j]) or lines[j].strip() == "}":
                break
            if mask.search(lines[j]):
                last = j
        if last > i:
            opens[i] = "_pp_var_" + found.group("coverage")
            closes[last] = closes.get(last, 0) + 1
    if not opens:
        raise GradgenError(f"{where}: no member guard in modcc's SIMD code",
                           hint=MODCC_HINT)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        indent = line[:len(line) - len(line.lstrip())]
        if i in opens:
            out.append(f"{indent}if ({EXACT_LIVE_FUNCTION}({opens[i]}+index_)) {{")
        out += [indent + "}"] * closes.get(i, 0)
    head = string.Template(_LIVE).substitute(live=EXACT_LIVE_FUNCTION)
    patched = "\n".join(out)
    at = patched.index("// interface methods")
    return patched[:at] + head + patched[at:]


def patch_exact_source(text: str, n_params: int, where: str) -> str:
    """modcc's C++ of an exact mechanism with the tree solve called at the start of advance_state."""
    found = list(ADVANCE_STATE.finditer(text))
    if len(found) != 1 or "PPACK_IFACE_BLOCK" not in text[:found[0].start()]:
        raise GradgenError(
            f"{where}: modcc's advance_state does not have the shape gradgen patches "
            f"({len(found)} matches)",
            hint=MODCC_HINT)
    m = found[0]
    call = f"    {EXACT_SOLVE_FUNCTION}(pp);\n"
    return ("#include <cstring>\n" + text[:m.start()] + solve_source(n_params) + text[m.start():m.end()] + call
            + text[m.end():])
