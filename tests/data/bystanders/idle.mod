: A leak with a parameter nothing reads: its dV/dθ and its finite differences are both
: exactly zero, so a check by it alone must say that nothing was checked.

NEURON {
    SUFFIX idle
    NONSPECIFIC_CURRENT i
    RANGE g, e, unused
}

PARAMETER {
    g = 0.001 (S/cm2)
    e = -65 (mV)
    unused = 1
}

BREAKPOINT {
    i = g*(v - e)
}
