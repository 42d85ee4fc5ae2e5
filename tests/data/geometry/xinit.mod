: Test mechanism for gradgen.geometry's mirror check: starts the diffusive concentration Xd
: of ion x at the painted profile x0, so that Xd can relax next to an identical V profile.
NEURON {
    SUFFIX xinit
    USEION x READ xd WRITE xd VALENCE 1
    RANGE x0
}

PARAMETER {
    x0 = 0
}

INITIAL {
    xd = x0
}

BREAKPOINT {
}
