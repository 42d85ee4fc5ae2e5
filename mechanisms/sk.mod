: Small-conductance Ca-activated K channel: a single gate driven by intracellular Ca.
: Written for gradgen's standard set. The Hill factor cai^4/(cai^4 + kd^4) is written out as
: products: nocmodl's cnexp (NEURON) aborts on ^ in a DERIVATIVE; modcc takes either.
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
    z = cai*cai*cai*cai/(cai*cai*cai*cai + kd*kd*kd*kd)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*z*(v - ek)
}

DERIVATIVE states {
    z' = (cai*cai*cai*cai/(cai*cai*cai*cai + kd*kd*kd*kd) - z)/tau
}
