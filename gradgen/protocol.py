"""Every name gradgen generates, in one place.

Generated mechanisms, the runtime that paints them, the templates and pycat's JAX gradient
mechanisms must agree on these names exactly; a name typed twice drifts. Templates receive
this module as ``names`` and build every generated identifier through it.

All generated identifiers start with ``g`` followed by a second letter that says what they
are, so they cannot be mistaken for one another; :func:`is_reserved` tells a user's name
that would collide with them.
"""
from __future__ import annotations

import re

#: The file that describes a converted model (its parameters, mechanisms and coupling).
MANIFEST = "gradients.json"

# ---- mechanisms ------------------------------------------------------------------------

#: Arbor runs mechanisms in alphabetical order in both phases; the hub must sort after
#: every ``grad_<name>`` contributor, so that it sees all their contributions.
HUB_NAME = "gradz_hub"
CONTRIBUTOR_PREFIX = "grad_"
#: Prefix of the original mechanisms when both catalogues are loaded into one model.
ORIGINAL_PREFIX = "orig_"
#: The procedure a generated mechanism SOLVEs in BREAKPOINT for its phase-B update.
ADVANCE_PROCEDURE = "gg_advance"
#: The FUNCTION that gives exprelr's derivative in generated mechanisms.
DEXPRELR_FUNCTION = "gg_dexprelr"


def gradient_name(mechanism: str) -> str:
    """Name of the gradient version of a mechanism."""
    return CONTRIBUTOR_PREFIX + mechanism


def original_name(mechanism: str) -> str:
    """Name of the original mechanism inside a model that also holds gradient versions."""
    return ORIGINAL_PREFIX + mechanism


# ---- fused mechanisms (one per painted set, with the hub's work inside) -------------------

#: Fused mechanisms cover whole CVs alone, so their names need not sort against the hub.
FUSED_PREFIX = "gradf_"
#: The fused mechanism's nonspecific current: the sum of its members' nonspecific currents.
FUSED_NONSPECIFIC = "gg_i"
#: LOCALs of the hub's update inside a fused mechanism.
FUSED_RATE = "gg_rate"
FUSED_DENOMINATOR = "gg_den"


def fused_name(members: list[str]) -> str:
    """Name of the fused mechanism of a painted set (sorted so every order gives one name)."""
    return FUSED_PREFIX + "_".join(sorted(members))


# ---- the exact carrier (one mechanism per cell, u_k solved on the CV tree inside it) -----

#: The exact mechanism is painted alone on every CV with membrane.
EXACT_PREFIX = "gradx_"
#: Per-CV tree parameters painted on the exact mechanism (see targets/arbor/exact_carrier.py):
#: capacitance (pF), area (µm²), offset to the parent instance, face conductance to the
#: parent node (µS), parent-is-a-fork flag, holds-a-fork flag, the held fork's parent offset
#: and face conductance (µS).
TREE_CAPACITANCE, TREE_AREA, TREE_PARENT, TREE_FACE = "gx_cap", "gx_area", "gx_par", "gx_gf"
TREE_TO_FORK, TREE_HOLDS_FORK, TREE_FORK_PARENT, TREE_FORK_FACE = "gx_pf", "gx_hf", "gx_fpar", "gx_fgf"
TREE_PARAMETERS = (TREE_CAPACITANCE, TREE_AREA, TREE_PARENT, TREE_FACE, TREE_TO_FORK, TREE_HOLDS_FORK,
                   TREE_FORK_PARENT, TREE_FORK_FACE)
#: ASSIGNED work arrays of the tree solve: the CV's diagonal, the held fork's diagonal.
EXACT_DIAGONAL = "gx_d"
EXACT_FORK_DIAGONAL = "gx_fd"
#: The C++ function the patch inserts into the exact mechanism's advance_state.
EXACT_SOLVE_FUNCTION = "gx_tree_solve"
#: LOCALs of a guarded exact mechanism's linearised current I + G·(v − V): the members' summed
#: current and the voltage it was computed at (modcc takes G, the sum of the members' ∂I/∂V).
EXACT_CURRENT = "gx_i"
EXACT_VOLTAGE = "gx_v"
#: The C++ helper that tells whether a SIMD chunk holds a member (patched SIMD builds).
EXACT_LIVE_FUNCTION = "gx_live"


#: The C++ functions that move the point processes' sources into the exact mechanism and
#: u_k back out (targets/arbor/exact_channel.py; one pair in each patched file).
EXACT_CHANNEL_IN = "gx_channel_in"
EXACT_CHANNEL_OUT = "gx_channel_out"


def exact_point_name(exact: str, point: str) -> str:
    """Name of a point process's exact-carrier version beside the exact mechanism ``exact``:
    it sorts after ``exact``, so Arbor runs it after that mechanism in both phases."""
    return f"{exact}__{point}"


def exact_name(members: list[str]) -> str:
    """Name of the exact-carrier mechanism of a cell's converted mechanisms."""
    return EXACT_PREFIX + "_".join(sorted(members))


def exact_source(k: int) -> str:
    """ASSIGNED per-CV source of θ_k at V^n (mA/cm²): the members' B_k."""
    return f"gx_b{k}"


def exact_conductance_change(k: int) -> str:
    """ASSIGNED per-CV dG_k (S/cm² per unit θ_k): the solve adds dG_k·(V^{n+1} − V^n)."""
    return f"gx_g{k}"


def exact_current(current: str) -> str:
    """ASSIGNED of an exact mechanism: a coupled ion current (``ica``) as its members wrote it
    in phase A, for the members' state updates (modcc's advance_state cannot read back an ion
    current its own mechanism writes)."""
    return f"gx_{current}"


#: ASSIGNED per-CV V^n, for the conductance-change term of the solve.
EXACT_PREVIOUS_VOLTAGE = "gx_vn"

#: The exact mechanism's SIMD rewrites (targets.arbor.exact_simd): the layout flag (ASSIGNED),
#: the function that lays the members' fields out chunk by chunk, its C++ locals, and the
#: temporary of a blended store.
EXACT_LAYOUT = "gx_layout"
EXACT_LAYOUT_FUNCTION = "gx_chunk_major"
EXACT_CHUNKED, EXACT_STEP = "gx_chunked_", "gx_step_"
EXACT_KEEP = "gx_keep_"
#: The C++ type of 4 right-hand sides of one node in the tree solve (a GCC/Clang vector).
EXACT_VECTOR = "gx_v4"


def member_prefix(mechanism: str) -> str:
    """Prefix of a member's names (states, parameters, σ, temporaries) in a fused mechanism."""
    return f"{mechanism}_"


def member_fields(mechanism: str) -> str:
    """Prefix of a member's generated per-CV fields (σ, their start values, dG, ...)."""
    return member_prefix(mechanism) + "gg_"


def coverage(mechanism: str) -> str:
    """RANGE parameter of a fused mechanism: the member's covered fraction of the CV."""
    return member_prefix(mechanism) + "gg_c"


#: The C++ temporary of the repaired SIMD write in modcc's generated code.
SIMD_OLD_VALUE = "gg_old_"


# ---- ions: carriers of u_k and per-CV accumulators ----------------------------------------

#: Per-CV accumulator of the total membrane conductance.
CONDUCTANCE_ION = "gsg"


def carrier_ion(k: int) -> str:
    """Ion whose diffusive concentration carries u_k = dV/dθ_k (written by the hub only)."""
    return f"gg{k}"


def scratch_ion(k: int) -> str:
    """Per-CV accumulator of the source terms of θ_k, emptied by the hub every phase."""
    return f"gs{k}"


def gradient_ions(n_params: int) -> list[str]:
    """All diffusive ions a model with ``n_params`` parameters needs."""
    return [CONDUCTANCE_ION] + [f(k) for k in range(n_params) for f in (carrier_ion, scratch_ion)]


def diffusive(ion: str) -> str:
    """The NMODL variable of an ion's diffusive concentration."""
    return f"{ion}d"


def hub_state(k: int) -> str:
    """The hub's STATE copy of u_k, aligned with the voltage samples."""
    return f"u{k}"


def hub_probe_tag(site: int, k: int) -> str:
    """Probe tag of u_k at the ``site``-th probe site."""
    return f"u{site}_{k}"


# ---- ion coupling stores ------------------------------------------------------------------

def current_store(current: str, k: int) -> str:
    """Per-CV d(ion current)/dθ_k, written by the current's writers, read by state updates."""
    return f"gj{k}{current}"


def concentration_store(concentration: str, k: int) -> str:
    """Per-CV u-free part of d(concentration)/dθ_k, published by the concentration's writer."""
    return f"gc{k}{concentration}"


def concentration_dv_store(concentration: str) -> str:
    """Per-CV ∂(concentration)/∂V, published by the concentration's writer."""
    return f"gv{concentration}"


def current_dv_store(current: str) -> str:
    """Per-CV coefficient of u_k in d(ion current)/dθ_k, published ahead by the current's
    writers where the reader runs first (NEURON: :func:`gradgen.sensitivity.derive.derive_contributor`'s
    ``pool_first``)."""
    return f"gw{current}"


def seen(name: str) -> str:
    """A concentration reader's copy of a coupled concentration (or of its store) as its
    state update saw it, for its next phase A (the writer has moved on by then in NEURON)."""
    return f"gg_{name}_seen"


def last_current(current: str) -> str:
    """A mechanism's own current as its last BREAKPOINT left it, kept as a STATE for the
    DERIVATIVE block that reads it (NEURON's nrn_state reads the value of nrn_cur). A STATE
    of the mechanism itself (its translation is read again as a user's file), so not of a
    reserved form: the lowering refuses a file that declares the name."""
    return f"{current}_last"


def clamp_store(k: int) -> str:
    """Per-CV u_k(solved) − u_k(set) of the last step where a voltage process set V (else 0):
    states were updated with the solved V, so they complete σ with the solved u."""
    return f"gu{k}"


# ---- variables inside a contributor -------------------------------------------------------

def weight(k: int) -> str:
    """RANGE parameter painted 1 where θ_k binds to this mechanism's parameter."""
    return f"gg_w{k}"


def sens(state: str, k: int) -> str:
    """σ = ds/dθ_k of a state."""
    return f"gg_{state}_s{k}"


def sens_pre(state: str, k: int) -> str:
    """The u-free part of σ after phase B (σ = σpre + JV·u_k in phase A)."""
    return f"gg_{state}_p{k}"


def sens_dv(state: str) -> str:
    """JV = ∂s⁺/∂V^{n+1} of a state's update."""
    return f"gg_{state}_jv"


def dcond(k: int) -> str:
    """dg/dθ_k of the mechanism's conductance, for the conductance-change term."""
    return f"gg_dg{k}"


#: V^n, remembered for the conductance-change term.
VPREV = "gg_vprev"

#: A mechanism's own clock (an ASSIGNED it advances by each step's dt, 0 at INITIAL): the
#: time NEURON's ``t`` reads, which Arbor does not pass to mechanisms (gradgen.nmodl.clock).
CLOCK = "gg_t"
#: The METHOD-less block of a translation that advances the clock, SOLVEd after the states.
CLOCK_PROCEDURE = "gg_clock"


def peer_carrier(k: int) -> str:
    """ASSIGNED of a junction's gradient version: u_k on the peer CV (the peer's carrier Xd),
    filled by the line :mod:`gradgen.targets.arbor.process_patch` adds to modcc's C++."""
    return f"gg_peer{k}"


#: The C++ error of a junction whose carrier ion does not cover every CV (the peer's
#: carrier is then not at the peer's CV index).
PEER_INDEX_ERROR = "gradgen: a carrier ion does not cover every CV"

#: Prefixes of the LOCAL temporaries per generated block (common subexpressions, branches).
#: The comment line before a block a gradient mechanism pastes from the original for its
#: initial SOLVE (gradgen.nmodl.initial_solve); the Arbor build finds pasted LINEAR blocks by it.
PASTED_BLOCK_COMMENT = ": for the initial SOLVE, as in"

LOCAL_PREFIX = {"initial": "gi", "phase_a": "ga", "phase_b": "gb", "events": "ge",
                "initial_lines": "gj", "phase_a_lines": "gk", "current_lines": "gc",
                "phase_b_lines": "gl", "events_lines": "gm", "current_conductance": "gq",
                "publish": "gx", "current_conductance_lines": "gr"}


def nernst_flag(ion: str) -> str:
    """RANGE parameter of a gradient mechanism: 1 where the ion's reversal potential follows
    its concentrations (Arbor's nernst method), 0 where it is fixed."""
    return f"gg_nernst_{ion}"


def permuted_state(n: int) -> str:
    """LOCAL of INITIAL holding the n-th state a pasted LINEAR solve left in another state's
    place (gradgen.targets.arbor.modcc_order)."""
    return f"gg_perm{n}"


def elimination_local(block_prefix: str, n: int) -> str:
    """The n-th LOCAL of a linear solve written out as elimination (a block's prefix + f)."""
    return f"{block_prefix}f{n}"


# ---- homeostatic control ------------------------------------------------------------------


def parameter_ion(k: int) -> str:
    """Ion whose (fast-diffusing, so cell-uniform) concentration is the learned θ_k."""
    return f"gp{k}"


def theta_state(k: int) -> str:
    """The homeostatic hub's STATE copy of the learned θ_k."""
    return f"theta{k}"


def rate_gradient_state(k: int) -> str:
    """The homeostatic hub's STATE φ_k, the surrogate gradient of the spike rate."""
    return f"phi{k}"


#: Homeostatic hub STATEs: the smoothed spike rate and the spike count.
RATE_STATE = "rate"
SPIKE_COUNT_STATE = "spike_count"

#: Contributor LOCAL: exp(−λ·dt), the forgetting factor of a step.
FORGET = "gg_keep"
#: Contributor PARAMETER: the forgetting rate λ.
LAMBDA = "gg_lambda"
#: Homeostatic hub RANGE parameter: the error weight, > 0 only on the error site's CV.
ERROR_WEIGHT = "gg_ew"

# ---- the NEURON target ----------------------------------------------------------------------

#: The hub's RANGE copies of the membrane capacitance (µF/cm²) and axial resistivity (Ω·cm):
#: NMODL cannot read NEURON's cm and Ra, so the runtime sets them per segment.
NEURON_CAPACITANCE = "gg_cm"
NEURON_RESISTIVITY = "gg_ra"
#: The hub's procedure (membrane step of every u_k) and its KINETIC block (the diffusion).
NEURON_MEMBRANE_PROCEDURE = "gg_membrane"
NEURON_DIFFUSION_BLOCK = "gg_diffuse"


def concentration(ion: str) -> str:
    """The NMODL variable of an ion's inside concentration in NEURON (the carrier's value)."""
    return f"{ion}i"


#: The NEURON carriers (``convert --target neuron --scheme``): ``shadow`` (the default) makes
#: u_k the voltage of a copy of the cell per θ, solved in NEURON's own matrix step;
#: ``corrected`` and ``naive`` carry u_k as an ion's concentration moved by longitudinal
#: diffusion, with and without the split compensation.
NEURON_SCHEMES = ("shadow", "corrected", "naive")
#: The density mechanism of the shadow cells: current g·u + source, with g and the source
#: read from the main cell's accumulators through these POINTERs.
SHADOW_MECHANISM = "gg_shadow"
SHADOW_CURRENT = "gg_i"
SHADOW_CONDUCTANCE = "gg_gp"
SHADOW_SOURCE = "gg_sp"
#: The shadow hub's procedure: u_k from the shadow cells, accumulators zeroed.
SHADOW_HUB_PROCEDURE = "gg_gather"


def shadow_voltage(k: int) -> str:
    """The shadow hub's POINTER to the voltage of θ_k's shadow segment (u_k)."""
    return f"gg_up{k}"


def shadow_section(k: int, name: str) -> str:
    """The name of θ_k's copy of section ``name``."""
    return f"gg_shadow{k}_" + re.sub(r"\W", "_", name)


def split_increment(k: int) -> str:
    """The NEURON hub's remembered diffusion increment of u_k (the split compensation)."""
    return f"gg_dd{k}"


def previous_split_increment(k: int, steps: int = 1) -> str:
    """The diffusion increment ``steps`` steps before the last one: dd is extrapolated to this
    step from the last three (3·dd − 3·dd₁ + dd₂)."""
    return f"gg_dp{k}" if steps == 1 else f"gg_dp{k}_{steps}"


def membrane_value(k: int) -> str:
    """The NEURON hub's u_k right after its membrane step, before NEURON diffuses it."""
    return f"gg_xs{k}"


# ---- NMODL arrays (unrolled by the parser into scalars) -----------------------------------


def array_element(array: str, index: int, underscores: int = 1) -> str:
    """The scalar that stands for element ``index`` of a user's NMODL array ``array[N]``
    (``ca[2]`` -> ``ca_2``): a STATE, parameter or probe of that name in the generated
    mechanisms. The parser adds underscores where the user's file already has such a name."""
    return f"{array}{'_' * underscores}{index}"


# ---- calibration --------------------------------------------------------------------------

#: The ion of the start-up run that measures Arbor's diffusion law.
CALIBRATION_ION = "gradgen_cal"

#: Generated names inside a contributor: ions, weights, σ, LOCAL temporaries, stores.
_RESERVED = re.compile(r"^(?:g[gspcjiabeklmux]n?\d\w*|gg_\w*|gsg\w*|gv\w+|grad_\w*|gradz_\w*|gradx_\w*|gx_\w*|orig_\w*)$")


def is_reserved(name: str) -> bool:
    """Whether a user's identifier could collide with a generated one."""
    return bool(_RESERVED.match(name))
