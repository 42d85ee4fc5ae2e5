: Passive leak, as in Arbor's catalogue.

NEURON {
    SUFFIX pas
    NONSPECIFIC_CURRENT i
    RANGE g, e
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g = .001 (S/cm2)
    e = -70  (mV) : reversal potential
}

BREAKPOINT {
    i = g*(v - e)
}
