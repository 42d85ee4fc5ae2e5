: Transient (fast, inactivating) Na channel, m^3 h, written for gradgen.
: Traub-style rates with exprelr at the removable singularities; q10 = 3 from 36 degC.

NEURON {
    SUFFIX nat
    USEION na READ ena WRITE ina
    RANGE gbar, vshift
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gbar = 0.05 (S/cm2)
    vshift = 0 (mV)
    celsius (degC)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = gbar*m*m*m*h*(v - ena)
}

INITIAL {
    LOCAL am, bm, ah, bh, u
    u = v - vshift
    am = 1.28*exprelr(-(u + 54)/4)
    bm = 1.4*exprelr((u + 27)/5)
    ah = 0.128*exp(-(u + 50)/18)
    bh = 4/(1 + exp(-(u + 27)/5))
    m = am/(am + bm)
    h = ah/(ah + bh)
}

DERIVATIVE states {
    LOCAL am, bm, ah, bh, u, q
    q = 3^((celsius - 36)/10)
    u = v - vshift
    am = 1.28*exprelr(-(u + 54)/4)
    bm = 1.4*exprelr((u + 27)/5)
    ah = 0.128*exp(-(u + 50)/18)
    bh = 4/(1 + exp(-(u + 27)/5))
    m' = q*(am*(1 - m) - bm*m)
    h' = q*(ah*(1 - h) - bh*h)
}
