"""Two additions to modcc's C++ for the gradient versions of junction and voltage processes.

**Junctions: the peer's sensitivity.**

A junction's current I(v, v_peer) reads the peer CV's voltage explicitly (V^n, in
``compute_currents``), so its sensitivity has the source term ∂I/∂v_peer·u_peer: the
junction carries dV/dθ from one cell (or CV) to the other only if its gradient version can
read u_k on the peer CV. NMODL gives a junction ``v_peer`` but no other peer variable, and
Arbor's ion diffusion does not cross junctions. The carrier of u_k is a diffusive ion on
every CV, so the peer's u_k is the carrier's Xd at the peer's CV: modcc's C++ holds both the
peer index (``_pp_var_peer_index``, a CV index) and the carrier's array. The gradient version
declares one ASSIGNED per θ_k (:func:`gradgen.protocol.peer_carrier`); this module adds, at
the top of ``compute_currents``' loop, the line that fills it from the peer CV.

That index is the carrier's own only if the carrier covers every CV of the cell group (its
ion index is then the CV index). gradgen paints the carriers everywhere; the added code
checks it for the instance's own CV and stops the simulation with
:data:`gradgen.protocol.PEER_INDEX_ERROR` otherwise, rather than read another CV.

The hub runs after the junction's gradient version (alphabetical order), so the peer's
carrier still holds u^n = dV^n/dθ, aligned with the v_peer = V^n the current reads.

**Voltage processes: carrier writes as assignments.** A VOLTAGE_PROCESS sets V on every CV
it touches (modcc assigns ``vec_v``), but applies an ``xd`` write as ``Xd += w·(x − old)``
with w the fraction of the CV it covers. Its gradient version must set u_k as the process
sets V, so :func:`patch_voltage_source` makes the carrier writes use weight 1.
"""
from __future__ import annotations

import re

from gradgen.errors import GradgenError
from gradgen.protocol import PEER_INDEX_ERROR, carrier_ion, peer_carrier

#: Bumped whenever the added code changes, so cached catalogues are rebuilt.
PROCESS_PATCH_VERSION = 1

_LOOP = re.compile(r"(static void compute_currents\(arb_mechanism_ppack\* pp\) \{\n\s*PPACK_IFACE_BLOCK;\n"
                   r"\s*for \(arb_size_type i_ = 0; i_ < _pp_var_width; \+\+i_\) \{\n)")
_PEER = re.compile(rf"_pp_var_{peer_carrier(0)[:-1]}(\d+)\b")


_WEIGHTED_WRITE = re.compile(r"(_pp_var_ion_\w+\.diffusive_concentration\[\w+\] = fma\()_pp_var_weight\[i_\](, )")


def needs_process_patch(nmodl: str) -> bool:
    """Whether an NMODL source is a junction's gradient version reading the peer's carriers,
    or a voltage process writing carriers."""
    return ("JUNCTION_PROCESS" in nmodl and peer_carrier(0) in nmodl) or (
        "VOLTAGE_PROCESS" in nmodl and f"WRITE {carrier_ion(0)}d" in nmodl)


def patch_voltage_source(text: str, where: str) -> str:
    """modcc's C++ of a voltage process with its diffusive-concentration writes unweighted."""
    patched, count = _WEIGHTED_WRITE.subn(r"\g<1>1.0\g<2>", text)
    if count == 0 or count != len(re.findall(r"diffusive_concentration\[\w+\] =", text)):
        raise GradgenError(f"{where}: modcc wrote a voltage process's diffusive concentration in a "
                           "form gradgen does not know", hint="use Arbor 0.12's modcc")
    return patched


def patch_junction_source(text: str, where: str) -> str:
    """modcc's C++ of a junction's gradient version with the peer carriers filled per instance."""
    ks = sorted({int(k) for k in _PEER.findall(text)})
    if not ks:
        return text
    found = _LOOP.search(text)
    if found is None:
        raise GradgenError(f"{where}: modcc's compute_currents has an unknown form; the junction's "
                           "peer sensitivity cannot be added", hint="use Arbor 0.12's modcc")
    indent = " " * 8
    lines = [f"{indent}if (_pp_var_ion_{carrier_ion(ks[0])}_index[i_] != _pp_var_node_index[i_]) "
             f"throw std::runtime_error(\"{PEER_INDEX_ERROR}\");\n"]
    lines += [f"{indent}_pp_var_{peer_carrier(k)}[i_] = "
              f"_pp_var_ion_{carrier_ion(k)}.diffusive_concentration[_pp_var_peer_index[i_]];\n" for k in ks]
    patched = text[:found.end()] + "".join(lines) + text[found.end():]
    return "#include <stdexcept>\n" + patched
