: High-voltage-activated Ca channel, m^2 h, written for gradgen.
: Writes ica and reads the reversal potential eca; no ion concentration is written here.

NEURON {
    SUFFIX cahva
    USEION ca READ eca WRITE ica
    RANGE gbar
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.001 (S/cm2)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gbar*m*m*h*(v - eca)
}

INITIAL {
    LOCAL am, bm, ah, bh
    am = 0.209*exprelr(-(v + 27)/3.8)
    bm = 0.94*exp(-(v + 75)/17)
    ah = 0.000457*exp(-(v + 13)/50)
    bh = 0.0065/(exp(-(v + 15)/28) + 1)
    m = am/(am + bm)
    h = ah/(ah + bh)
}

DERIVATIVE states {
    LOCAL am, bm, ah, bh
    am = 0.209*exprelr(-(v + 27)/3.8)
    bm = 0.94*exp(-(v + 75)/17)
    ah = 0.000457*exp(-(v + 13)/50)
    bh = 0.0065/(exp(-(v + 15)/28) + 1)
    m' = am*(1 - m) - bm*m
    h' = ah*(1 - h) - bh*h
}
