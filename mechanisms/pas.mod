: Passive leak: a constant conductance g towards the reversal potential e.

NEURON {
    SUFFIX pas
    NONSPECIFIC_CURRENT i
    RANGE g, e
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    g = 0.001 (S/cm2)
    e = -70 (mV)
}

BREAKPOINT {
    i = g*(v - e)
}
