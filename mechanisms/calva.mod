: Low-voltage-activated (T-type) Ca channel, m^2 h, written for gradgen.
: Writes ica and reads eca; the inactivation is slow and de-inactivates below rest.

NEURON {
    SUFFIX calva
    USEION ca READ eca WRITE ica
    RANGE gbar, vhalfm, vhalfh
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.001 (S/cm2)
    vhalfm = -57 (mV)
    vhalfh = -81 (mV)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gbar*m*m*h*(v - eca)
}

INITIAL {
    m = 1/(1 + exp(-(v - vhalfm)/6.2))
    h = 1/(1 + exp((v - vhalfh)/4))
}

DERIVATIVE states {
    LOCAL minf, hinf, mtau, htau
    minf = 1/(1 + exp(-(v - vhalfm)/6.2))
    hinf = 1/(1 + exp((v - vhalfh)/4))
    mtau = 0.612 + 1/(exp(-(v + 132)/16.7) + exp((v + 16.8)/18.2))
    htau = 28 + exp(-(v + 22)/10.5)
    m' = (minf - m)/mtau
    h' = (hinf - h)/htau
}
