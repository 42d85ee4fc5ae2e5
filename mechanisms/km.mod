: M-current (slow, non-inactivating K), written for gradgen.
: tau peaks near the half-activation voltage; q10 = 2.3 from 36 degC.

NEURON {
    SUFFIX km
    USEION k READ ek WRITE ik
    RANGE gbar, vhalf, taumax
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.002 (S/cm2)
    vhalf = -35 (mV)
    taumax = 100 (ms)
    celsius (degC)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar*n*(v - ek)
}

INITIAL {
    n = 1/(1 + exp(-(v - vhalf)/10))
}

DERIVATIVE states {
    LOCAL ninf, tau, q
    q = 2.3^((celsius - 36)/10)
    ninf = 1/(1 + exp(-(v - vhalf)/10))
    tau = taumax/(3.3*exp((v - vhalf)/20) + exp(-(v - vhalf)/20))
    n' = q*(ninf - n)/tau
}
