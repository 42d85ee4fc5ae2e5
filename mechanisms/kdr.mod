: Delayed-rectifier K channel, n^4, written for gradgen (Traub-style rates).

NEURON {
    SUFFIX kdr
    USEION k READ ek WRITE ik
    RANGE gbar, vshift
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.02 (S/cm2)
    vshift = 0 (mV)
    celsius (degC)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*n*n*n*n*(v - ek)
}

INITIAL {
    LOCAL an, bn
    an = 0.16*exprelr(-(v - vshift + 52)/5)
    bn = 0.5*exp(-(v - vshift + 57)/40)
    n = an/(an + bn)
}

DERIVATIVE states {
    LOCAL an, bn, q
    q = 3^((celsius - 36)/10)
    an = 0.16*exprelr(-(v - vshift + 52)/5)
    bn = 0.5*exp(-(v - vshift + 57)/40)
    n' = q*(an*(1 - n) - bn*n)
}
