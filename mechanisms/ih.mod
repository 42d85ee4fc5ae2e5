: Hyperpolarisation-activated cation current Ih, written for gradgen.
: A nonspecific current with its own reversal potential eh.

NEURON {
    SUFFIX ih
    NONSPECIFIC_CURRENT ihcn
    RANGE gbar, eh, vhalf
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.0005 (S/cm2)
    eh = -45 (mV)
    vhalf = -82 (mV)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ihcn = gbar*m*(v - eh)
}

INITIAL {
    m = 1/(1 + exp((v - vhalf)/7))
}

DERIVATIVE states {
    LOCAL minf, tau
    minf = 1/(1 + exp((v - vhalf)/7))
    tau = 1/(0.0006*exp(-(v + 20)/14.5) + 0.0006*exp((v + 100)/23))
    m' = (minf - m)/tau
}
