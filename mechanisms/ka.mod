: A-type (transient) K channel, a^3 b, written for gradgen.
: Steady states are Boltzmann curves, time constants bell-shaped.

NEURON {
    SUFFIX ka
    USEION k READ ek WRITE ik
    RANGE gbar, vhalfa, vhalfb, taub0
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.01 (S/cm2)
    vhalfa = -60 (mV)
    vhalfb = -78 (mV)
    taub0 = 19 (ms)
}

STATE { a b }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*a*a*a*b*(v - ek)
}

INITIAL {
    a = 1/(1 + exp(-(v - vhalfa)/8.5))
    b = 1/(1 + exp((v - vhalfb)/6))
}

DERIVATIVE states {
    LOCAL ainf, binf, bell
    ainf = 1/(1 + exp(-(v - vhalfa)/8.5))
    binf = 1/(1 + exp((v - vhalfb)/6))
    bell = 1/(exp((v + 46)/5) + exp(-(v + 238)/37.5))
    a' = (ainf - a)/(0.37 + bell)
    b' = (binf - b)/(taub0 + bell)
}
