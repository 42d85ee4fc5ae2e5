: Small-conductance Ca-activated K channel: a single gate driven by intracellular Ca.
: Written for gradgen's standard set.
NEURON {
    SUFFIX sk
    USEION ca READ cai
    USEION k READ ek WRITE ik
    RANGE gbar, kd, tau
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
    (S) = (siemens)
}

PARAMETER {
    gbar = 0.01 (S/cm2)
    kd = 0.0005 (mM)     : half activation
    tau = 4 (ms)
}

STATE { z }

INITIAL {
    z = cai^4/(cai^4 + kd^4)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*z*(v - ek)
}

DERIVATIVE states {
    z' = (cai^4/(cai^4 + kd^4) - z)/tau
}
