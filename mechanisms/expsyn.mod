: Conductance synapse with a single exponential decay; each event adds its weight (uS).
: Written for gradgen's standard set.
NEURON {
    POINT_PROCESS expsyn
    RANGE tau, e
    NONSPECIFIC_CURRENT i
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (uS) = (microsiemens)
}

PARAMETER {
    tau = 2 (ms)     : decay time constant
    e = 0 (mV)       : reversal potential
}

STATE { g (uS) }

INITIAL {
    g = 0
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    i = g*(v - e)
}

DERIVATIVE states {
    g' = -g/tau
}

NET_RECEIVE(weight (uS)) {
    g = g + weight
}
