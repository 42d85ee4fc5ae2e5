NEURON { SUFFIX kx  NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.1 }
BREAKPOINT {
    if (v > 0) {
        i = g*boltzmann(v, -20)*(v + 80)
    }
}
