"""The exact carrier's channel to point processes, added to modcc's C++ of both sides.

A synapse's current enters the voltage step of the CV it sits on, so its B_k and dG_k must
enter the exact mechanism's tree solve there, and its σ update needs the solved u_k of that
CV. NMODL cannot reach another mechanism's instance, so gradgen adds C++: a per-cell-group
buffer (keyed by the group's voltage array, shared by every mechanism of the group) holding,
per CV node and θ_k, the points' summed source, their summed conductance change and u_k.

Per step, in Arbor's order (compute_currents of every mechanism, then advance_state of every
mechanism, each phase in alphabetical order; the exact mechanism sorts before its points):

1. each point's ``compute_currents`` adds its B_k and dG_k (per CV area, as the exact
   mechanism's members hold theirs) to the buffer at its node, after its own kernel;
2. the exact mechanism's ``advance_state`` moves them into its per-CV sources before the tree
   solve (emptying the buffer) and leaves u^{n+1} in the buffer after it;
3. each point's ``advance_state`` reads u^{n+1} of its node into its u STATEs first, then
   updates its states and σ with it.

The buffer is an ``inline`` function's static in every patched file of one catalogue, so the
exact mechanism and its points must be built into the same catalogue (one ``.so``).
:func:`patch_exact_channel` and :func:`patch_point_channel` refuse code without the shape
modcc 0.12.2 emits.
"""
from __future__ import annotations

import re
import string

from gradgen.errors import GradgenError
from gradgen.protocol import (
    EXACT_CHANNEL_IN,
    EXACT_CHANNEL_OUT,
    EXACT_SOLVE_FUNCTION,
    dcond,
    exact_conductance_change,
    exact_source,
    hub_state,
)
from gradgen.targets.arbor.exact_patch import MODCC_HINT

#: Bumped whenever the inserted C++ changes, so cached catalogues are rebuilt.
CHANNEL_PATCH_VERSION = 1

_REGISTRY = """\
// gradgen: the exact carrier's channel between a cell group's exact mechanism and its point
// processes (one per group, keyed by the group's voltage array; see exact_channel.py)
#include <algorithm>
#include <cstddef>
#include <map>
#include <mutex>
#include <vector>
namespace gradgen_exact_channel_v1 {
struct channel { std::vector<double> b, g, u; };
inline channel& of(const void* group, std::size_t size) {
    static std::mutex lock;
    static std::map<const void*, channel> channels;
    std::lock_guard<std::mutex> guard(lock);
    channel& c = channels[group];
    if (c.b.size() < size) {
        c.b.resize(size, 0.0);
        c.g.resize(size, 0.0);
        c.u.resize(size, 0.0);
    }
    return c;
}
}

"""

_NODES = """\
    const arb_size_type n = _pp_var_width;
    constexpr arb_size_type K = ${n};
    arb_size_type nodes = 0;
    for (arb_size_type i = 0; i < n; ++i) nodes = std::max<arb_size_type>(nodes, _pp_var_node_index[i] + 1);
    auto& c = gradgen_exact_channel_v1::of(_pp_var_vec_v, nodes*K);
"""

_EXACT = string.Template("""\
// gradgen: the points' sources into this mechanism's, before the tree solve
static void ${into}(arb_mechanism_ppack* pp) {
    PPACK_IFACE_BLOCK;
${nodes}    arb_value_type* b[K] = {${sources}};
    arb_value_type* g[K] = {${changes}};
    for (arb_size_type i = 0; i < n; ++i) {
        const arb_size_type at = _pp_var_node_index[i]*K;
        for (arb_size_type k = 0; k < K; ++k) {
            b[k][i] += c.b[at + k];
            g[k][i] += c.g[at + k];
            c.b[at + k] = 0;
            c.g[at + k] = 0;
        }
    }
}

// gradgen: u^{n+1} of every CV for the points, after the tree solve
static void ${out}(arb_mechanism_ppack* pp) {
    PPACK_IFACE_BLOCK;
${nodes}    arb_value_type* u[K] = {${states}};
    for (arb_size_type i = 0; i < n; ++i) {
        for (arb_size_type k = 0; k < K; ++k) c.u[_pp_var_node_index[i]*K + k] = u[k][i];
    }
}

""")

_POINT = string.Template("""\
// gradgen: this point's B_k and dG_k to its CV in the channel, after its kernel
static void ${into}(arb_mechanism_ppack* pp) {
    PPACK_IFACE_BLOCK;
${nodes}    const arb_value_type* b[K] = {${sources}};
    const arb_value_type* g[K] = {${changes}};
    for (arb_size_type i = 0; i < n; ++i) {
        const arb_size_type at = _pp_var_node_index[i]*K;
        for (arb_size_type k = 0; k < K; ++k) {
            c.b[at + k] += b[k][i];
            c.g[at + k] += g[k][i];
        }
    }
}

// gradgen: u^{n+1} of its CV from the channel, before its state update
static void ${out}(arb_mechanism_ppack* pp) {
    PPACK_IFACE_BLOCK;
${nodes}    arb_value_type* u[K] = {${states}};
    for (arb_size_type i = 0; i < n; ++i) {
        for (arb_size_type k = 0; k < K; ++k) u[k][i] = c.u[_pp_var_node_index[i]*K + k];
    }
}

""")

_HEADER = {name: re.compile(rf"^static void {name}\(arb_mechanism_ppack\* pp\) \{{\n", re.M)
           for name in ("compute_currents", "advance_state")}


def _names(f, n_params: int) -> str:
    return ", ".join(f"_pp_var_{f(k)}" for k in range(n_params))


def _one(text: str, kernel: str, where: str) -> re.Match:
    found = list(_HEADER[kernel].finditer(text))
    if len(found) != 1 or "PPACK_IFACE_BLOCK" not in text[:found[0].start()]:
        raise GradgenError(f"{where}: modcc's {kernel} does not have the shape gradgen patches "
                           f"({len(found)} matches)",
                           hint=MODCC_HINT)
    return found[0]


def _with_registry(text: str, where: str) -> str:
    if not text.startswith("#include"):
        raise GradgenError(f"{where}: modcc's C++ does not start with its includes",
                           hint=MODCC_HINT)
    return _REGISTRY + text


def patch_exact_channel(text: str, n_params: int, where: str) -> str:
    """The exact mechanism's C++ (already given its tree solve) with the points' sources moved
    in before the solve and u^{n+1} handed out after it."""
    solve = f"    {EXACT_SOLVE_FUNCTION}(pp);\n"
    m = _one(text, "advance_state", where)
    if not text[m.end():].startswith(solve):
        raise GradgenError(f"{where}: the tree solve is not the first statement of advance_state",
                           hint="report this: the exact patch and the channel patch disagree")
    nodes = string.Template(_NODES).substitute(n=n_params)
    functions = _EXACT.substitute(into=EXACT_CHANNEL_IN, out=EXACT_CHANNEL_OUT, nodes=nodes,
                                  sources=_names(exact_source, n_params),
                                  changes=_names(exact_conductance_change, n_params),
                                  states=_names(hub_state, n_params))
    calls = f"    {EXACT_CHANNEL_IN}(pp);\n{solve}    {EXACT_CHANNEL_OUT}(pp);\n"
    text = text[:m.start()] + functions + text[m.start():m.end()] + calls + text[m.end() + len(solve):]
    return _with_registry(text, where)


def patch_point_channel(text: str, n_params: int, where: str) -> str:
    """A point process's exact-carrier C++ with its sources handed to the channel after its
    ``compute_currents`` kernel and u^{n+1} read at the start of its ``advance_state``."""
    nodes = string.Template(_NODES).substitute(n=n_params)
    functions = _POINT.substitute(into=EXACT_CHANNEL_IN, out=EXACT_CHANNEL_OUT, nodes=nodes,
                                  sources=_names(exact_source, n_params), changes=_names(dcond, n_params),
                                  states=_names(hub_state, n_params))
    m = _one(text, "compute_currents", where)
    end = text.find("\n}\n", m.end())
    if end < 0:
        raise GradgenError(f"{where}: modcc's compute_currents has no end gradgen recognises",
                           hint=MODCC_HINT)
    text = text[:end] + f"\n    {EXACT_CHANNEL_IN}(pp);" + text[end:]
    m = _one(text, "advance_state", where)
    text = text[:m.end()] + f"    {EXACT_CHANNEL_OUT}(pp);\n" + text[m.end():]
    first = min(_one(text, kernel, where).start() for kernel in _HEADER)
    return _with_registry(text[:first] + functions + text[first:], where)
