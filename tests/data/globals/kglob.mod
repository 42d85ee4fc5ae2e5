: A delayed-rectifier K channel whose half-activation, slope and reversal potential are
: GLOBAL (one value per mechanism, as in many published files), for the GLOBAL-θ tests.

NEURON {
    SUFFIX kglob
    USEION k WRITE ik
    RANGE gbar
    GLOBAL vhalf, slope, ek0
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.01 (S/cm2)
    vhalf = -40 (mV)
    slope = 8 (mV)
    ek0 = -85 (mV)
    tau = 3 (ms)
}

STATE { n }

INITIAL {
    n = 1/(1 + exp(-(v - vhalf)/slope))
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*n*(v - ek0)
}

DERIVATIVE states {
    n' = (1/(1 + exp(-(v - vhalf)/slope)) - n)/tau
}
