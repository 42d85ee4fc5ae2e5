: A three-state Markov K channel C <-> O <-> I, written for gradgen as a KINETIC scheme.
: Arbor solves it with METHOD sparse (one backward-Euler step per time step).

NEURON {
    SUFFIX kmarkov
    USEION k READ ek WRITE ik
    RANGE gbar, ka, kb
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.005 (S/cm2)
    ka = 0.2 (/ms)
    kb = 0.01 (/ms)
}

STATE { c o i }

BREAKPOINT {
    SOLVE scheme METHOD sparse
    ik = gbar*o*(v - ek)
}

INITIAL {
    SOLVE scheme STEADYSTATE sparse
}

KINETIC scheme {
    LOCAL a, b, g, d
    a = ka*exp((v + 40)/20)
    b = ka*exp(-(v + 40)/20)
    g = kb*exp((v + 30)/30)
    d = kb*exp(-(v + 30)/30)
    ~ c <-> o (a, b)
    ~ o <-> i (g, d)
    CONSERVE c + o + i = 1
}
