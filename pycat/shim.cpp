// pycat shim: an Arbor mechanism catalogue whose mechanisms are implemented in Python.
//
// Arbor loads a catalogue with dlopen + get_catalogue(int*). This library owns a fixed
// number of *slots*; each slot is one mechanism type with its own set of trampolines
// (template instances), because the ppack carries no type id. Python fills a slot's
// metadata through the pycat_* functions, stages a list of slots, and then calls
// arbor.load_catalogue(path); get_catalogue returns the staged slots. Every method call
// is forwarded to one Python callback (a ctypes function pointer). A non-zero return
// becomes a C++ exception that Arbor carries back to Python; a Python exception never
// unwinds through C++.

#include <arbor/mechanism_abi.h>

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifndef PYCAT_SLOTS
#define PYCAT_SLOTS 256
#endif

namespace {

// method ids shared with Python (pycat/_abi.py)
enum : int { M_INIT = 0, M_CURRENTS = 1, M_EVENTS = 2, M_ADVANCE = 3, M_WRITE_IONS = 4, M_POST = 5 };

using callback_t = int (*)(int slot, int method, arb_mechanism_ppack* pp,
                           arb_deliverable_event_stream* events, std::uint64_t signature, double dt);

struct slot_t {
    bool used = false;
    unsigned methods = 0;  // bit m set: Python implements method m
    arb_mechanism_kind kind = arb_mechanism_kind_density;
    bool linear = false;
    bool post_events = false;
    const char* name = "";
    std::deque<std::string> strings;  // owns every string handed to Arbor (deque: stable)
    std::vector<arb_field_info> globals, states, params;
    std::vector<arb_ion_info> ions;
    arb_mechanism_interface iface{};
};

slot_t g_slots[PYCAT_SLOTS];
int g_next_slot = 0;
callback_t g_callback = nullptr;
std::vector<arb_mechanism> g_staged;
thread_local std::string g_error;

const char* keep(slot_t& s, const char* text) {
    s.strings.emplace_back(text ? text : "");
    return s.strings.back().c_str();
}

// A cheap fingerprint of every buffer address the Python views depend on: when it
// changes (a new cell group, a rebuilt simulation) Python rebuilds its numpy views.
std::uint64_t signature(const slot_t& s, const arb_mechanism_ppack* pp) {
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* p) {
        h ^= reinterpret_cast<std::uintptr_t>(p);
        h *= 1099511628211ull;
        h ^= h >> 29;
    };
    mix(reinterpret_cast<const void*>(static_cast<std::uintptr_t>(pp->width)));
    mix(pp->vec_v); mix(pp->vec_i); mix(pp->vec_g); mix(pp->node_index); mix(pp->weight);
    mix(pp->multiplicity); mix(pp->globals);
    for (std::size_t i = 0; i < s.params.size(); ++i) mix(pp->parameters[i]);
    for (std::size_t i = 0; i < s.states.size(); ++i) mix(pp->state_vars[i]);
    for (std::size_t i = 0; i < s.ions.size(); ++i) {
        const arb_ion_state& ion = pp->ion_states[i];
        mix(ion.current_density); mix(ion.reversal_potential); mix(ion.internal_concentration);
        mix(ion.external_concentration); mix(ion.diffusive_concentration); mix(ion.index);
    }
    return h;
}

void dispatch(int slot, int method, arb_mechanism_ppack* pp, arb_deliverable_event_stream* ev) {
    const slot_t& s = g_slots[slot];
    if (!(s.methods & (1u << method))) return;
    if (!g_callback) throw std::runtime_error("pycat: no Python callback registered");
    int rc = g_callback(slot, method, pp, ev, signature(s, pp), pp->dt);
    if (rc != 0) {
        throw std::runtime_error(g_error.empty() ? std::string("pycat: a Python mechanism failed") : g_error);
    }
}

template <int S> void t_init(arb_mechanism_ppack* pp) { dispatch(S, M_INIT, pp, nullptr); }
template <int S> void t_currents(arb_mechanism_ppack* pp) { dispatch(S, M_CURRENTS, pp, nullptr); }
template <int S> void t_events(arb_mechanism_ppack* pp, arb_deliverable_event_stream* ev) {
    dispatch(S, M_EVENTS, pp, ev);
}
template <int S> void t_advance(arb_mechanism_ppack* pp) { dispatch(S, M_ADVANCE, pp, nullptr); }
template <int S> void t_write_ions(arb_mechanism_ppack* pp) { dispatch(S, M_WRITE_IONS, pp, nullptr); }
template <int S> void t_post(arb_mechanism_ppack* pp) { dispatch(S, M_POST, pp, nullptr); }

arb_mechanism_type make_type(int slot) {
    slot_t& s = g_slots[slot];
    arb_mechanism_type t{};
    t.abi_version = ARB_MECH_ABI_VERSION;
    t.fingerprint = "<pycat>";
    t.name = s.name;
    t.kind = s.kind;
    t.is_linear = s.linear;
    t.has_post_events = s.post_events;
    t.globals = s.globals.empty() ? nullptr : s.globals.data();
    t.n_globals = static_cast<arb_size_type>(s.globals.size());
    t.state_vars = s.states.empty() ? nullptr : s.states.data();
    t.n_state_vars = static_cast<arb_size_type>(s.states.size());
    t.parameters = s.params.empty() ? nullptr : s.params.data();
    t.n_parameters = static_cast<arb_size_type>(s.params.size());
    t.ions = s.ions.empty() ? nullptr : s.ions.data();
    t.n_ions = static_cast<arb_size_type>(s.ions.size());
    t.random_variables = nullptr;
    t.n_random_variables = 0;
    return t;
}

template <int S> arb_mechanism_type t_type() { return make_type(S); }
template <int S> arb_mechanism_interface* t_cpu() {
    arb_mechanism_interface& i = g_slots[S].iface;
    i.backend = arb_backend_kind_cpu;
    i.partition_width = 1;  // scalar: no SIMD padding semantics for Python code
    i.alignment = alignof(arb_value_type);
    i.init_mechanism = t_init<S>;
    i.compute_currents = t_currents<S>;
    i.apply_events = t_events<S>;
    i.advance_state = t_advance<S>;
    i.write_ions = t_write_ions<S>;
    i.post_event = t_post<S>;
    return &i;
}
arb_mechanism_interface* no_gpu() { return nullptr; }

template <int S> constexpr arb_mechanism entry() { return arb_mechanism{t_type<S>, t_cpu<S>, no_gpu}; }

template <std::size_t... I>
struct table_t {
    static constexpr arb_mechanism value[sizeof...(I)] = {entry<static_cast<int>(I)>()...};
};
template <std::size_t... I>
constexpr const arb_mechanism* make_table(std::index_sequence<I...>) { return table_t<I...>::value; }

const arb_mechanism* g_table = make_table(std::make_index_sequence<PYCAT_SLOTS>{});

}  // namespace

// A packing operation between Arbor's arrays and one row of a packed buffer; Python
// builds lists of these once per cell group so each method needs one C call to gather
// its inputs and one to scatter its outputs (see pycat/packing.py).
struct pycat_op {
    std::int32_t kind;            // OP_* below
    std::int32_t n;               // number of instances
    double* data;                 // Arbor array (OP_FILL: one scalar)
    const std::int32_t* index;    // null: data[i], else data[index[i]]
    std::int64_t row;             // element offset of the row in the packed buffer
};
enum : std::int32_t { OP_GATHER = 0, OP_ADD = 1, OP_ASSIGN = 2, OP_FILL = 3, OP_COMPARE = 4 };

extern "C" {

// Run ops against the packed buffer at `base`. Returns 1 when an OP_COMPARE found a
// difference (the remaining ops still run), else 0.
[[gnu::visibility("default")]] int pycat_run_ops(const pycat_op* ops, int n_ops, double* base) {
    int differs = 0;
    for (int k = 0; k < n_ops; ++k) {
        const pycat_op& op = ops[k];
        double* row = base + op.row;
        const std::int32_t* ix = op.index;
        switch (op.kind) {
            case OP_GATHER:
                if (ix) for (std::int32_t i = 0; i < op.n; ++i) row[i] = op.data[ix[i]];
                else for (std::int32_t i = 0; i < op.n; ++i) row[i] = op.data[i];
                break;
            case OP_ADD:
                if (ix) for (std::int32_t i = 0; i < op.n; ++i) op.data[ix[i]] += row[i];
                else for (std::int32_t i = 0; i < op.n; ++i) op.data[i] += row[i];
                break;
            case OP_ASSIGN:
                if (ix) for (std::int32_t i = 0; i < op.n; ++i) op.data[ix[i]] = row[i];
                else for (std::int32_t i = 0; i < op.n; ++i) op.data[i] = row[i];
                break;
            case OP_FILL:
                for (std::int32_t i = 0; i < op.n; ++i) row[i] = *op.data;
                break;
            case OP_COMPARE:
                for (std::int32_t i = 0; i < op.n && !differs; ++i) {
                    differs = (ix ? op.data[ix[i]] : op.data[i]) != row[i];
                }
                break;
            default:
                return -1;
        }
    }
    return differs;
}

// Sizes and offsets the Python side compares with its ctypes mirror (see _abi.py).
[[gnu::visibility("default")]] int pycat_layout(std::uint64_t* out, int n) {
    const std::uint64_t v[] = {
        sizeof(arb_mechanism_ppack),
        offsetof(arb_mechanism_ppack, width),
        offsetof(arb_mechanism_ppack, n_detectors),
        offsetof(arb_mechanism_ppack, vec_ci),
        offsetof(arb_mechanism_ppack, dt),
        offsetof(arb_mechanism_ppack, vec_v),
        offsetof(arb_mechanism_ppack, vec_i),
        offsetof(arb_mechanism_ppack, vec_g),
        offsetof(arb_mechanism_ppack, temperature_degC),
        offsetof(arb_mechanism_ppack, diam_um),
        offsetof(arb_mechanism_ppack, area_um2),
        offsetof(arb_mechanism_ppack, time_since_spike),
        offsetof(arb_mechanism_ppack, node_index),
        offsetof(arb_mechanism_ppack, peer_index),
        offsetof(arb_mechanism_ppack, multiplicity),
        offsetof(arb_mechanism_ppack, weight),
        offsetof(arb_mechanism_ppack, mechanism_id),
        offsetof(arb_mechanism_ppack, events),
        offsetof(arb_mechanism_ppack, index_constraints),
        offsetof(arb_mechanism_ppack, parameters),
        offsetof(arb_mechanism_ppack, state_vars),
        offsetof(arb_mechanism_ppack, globals),
        offsetof(arb_mechanism_ppack, ion_states),
        offsetof(arb_mechanism_ppack, random_numbers),
        sizeof(arb_ion_state),
        offsetof(arb_ion_state, current_density),
        offsetof(arb_ion_state, reversal_potential),
        offsetof(arb_ion_state, internal_concentration),
        offsetof(arb_ion_state, external_concentration),
        offsetof(arb_ion_state, diffusive_concentration),
        offsetof(arb_ion_state, ionic_charge),
        offsetof(arb_ion_state, index),
        sizeof(arb_deliverable_event_data),
        offsetof(arb_deliverable_event_data, mech_index),
        offsetof(arb_deliverable_event_data, weight),
        sizeof(arb_deliverable_event_stream),
        sizeof(arb_value_type),
        sizeof(arb_index_type),
        sizeof(arb_size_type),
        sizeof(arb_weight_type),
        sizeof(pycat_op),
        offsetof(pycat_op, data),
        offsetof(pycat_op, index),
        offsetof(pycat_op, row),
        static_cast<std::uint64_t>(ARB_MECH_ABI_VERSION),
        static_cast<std::uint64_t>(PYCAT_SLOTS),
    };
    const int count = static_cast<int>(sizeof(v) / sizeof(v[0]));
    for (int i = 0; i < n && i < count; ++i) out[i] = v[i];
    return count;
}

[[gnu::visibility("default")]] void pycat_set_callback(callback_t cb) { g_callback = cb; }

[[gnu::visibility("default")]] void pycat_set_error(const char* message) { g_error = message ? message : ""; }

// Claim a fresh slot; slots are never reused because Arbor keeps pointers into them.
[[gnu::visibility("default")]] int pycat_new_slot(const char* name, int kind, int linear, int post_events,
                                                   unsigned methods) {
    if (g_next_slot >= PYCAT_SLOTS) return -1;
    const int id = g_next_slot++;
    slot_t& s = g_slots[id];
    s.used = true;
    s.name = keep(s, name);
    s.kind = static_cast<arb_mechanism_kind>(kind);
    s.linear = linear != 0;
    s.post_events = post_events != 0;
    s.methods = methods;
    return id;
}

// which: 0 global, 1 state, 2 parameter
[[gnu::visibility("default")]] int pycat_add_field(int slot, int which, const char* name, const char* unit,
                                                    double value, double lo, double hi) {
    if (slot < 0 || slot >= g_next_slot) return -1;
    slot_t& s = g_slots[slot];
    arb_field_info f{keep(s, name), keep(s, unit), value, lo, hi};
    switch (which) {
        case 0: s.globals.push_back(f); break;
        case 1: s.states.push_back(f); break;
        case 2: s.params.push_back(f); break;
        default: return -1;
    }
    return 0;
}

// flags: bit 0 write_int, 1 write_ext, 2 read_int, 3 read_ext, 4 use_diff, 5 write_rev,
//        6 read_rev, 7 read_valence, 8 verify_valence
[[gnu::visibility("default")]] int pycat_add_ion(int slot, const char* name, unsigned flags, int valence) {
    if (slot < 0 || slot >= g_next_slot) return -1;
    slot_t& s = g_slots[slot];
    arb_ion_info ion{};
    ion.name = keep(s, name);
    ion.write_int_concentration = flags & 1u;
    ion.write_ext_concentration = flags & 2u;
    ion.read_int_concentration = flags & 4u;
    ion.read_ext_concentration = flags & 8u;
    ion.use_diff_concentration = flags & 16u;
    ion.write_rev_potential = flags & 32u;
    ion.read_rev_potential = flags & 64u;
    ion.read_valence = flags & 128u;
    ion.verify_valence = flags & 256u;
    ion.expected_valence = valence;
    s.ions.push_back(ion);
    return 0;
}

[[gnu::visibility("default")]] void pycat_stage_clear() { g_staged.clear(); }

[[gnu::visibility("default")]] int pycat_stage(int slot) {
    if (slot < 0 || slot >= g_next_slot) return -1;
    g_staged.push_back(g_table[slot]);
    return 0;
}

[[gnu::visibility("default")]] const void* get_catalogue(int* n) {
    *n = static_cast<int>(g_staged.size());
    return g_staged.empty() ? nullptr : static_cast<const void*>(g_staged.data());
}

}  // extern "C"
