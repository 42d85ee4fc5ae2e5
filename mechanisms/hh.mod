: Hodgkin-Huxley squid-axon channels (Na, K, leak), written for gradgen.
: Rates follow Hodgkin & Huxley (1952), shifted to a -65 mV rest; the
: singular rate expressions use exprelr so that v = -40 and v = -55 are safe.

NEURON {
    SUFFIX hh
    USEION na READ ena WRITE ina
    USEION k READ ek WRITE ik
    NONSPECIFIC_CURRENT il
    RANGE gnabar, gkbar, gl, el
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    gnabar = 0.12 (S/cm2)
    gkbar = 0.036 (S/cm2)
    gl = 0.0003 (S/cm2)
    el = -54.3 (mV)
    celsius (degC)
}

STATE { m h n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = gnabar*m*m*m*h*(v - ena)
    ik = gkbar*n*n*n*n*(v - ek)
    il = gl*(v - el)
}

INITIAL {
    LOCAL am, bm, ah, bh, an, bn
    am = exprelr(-(v + 40)/10)
    bm = 4*exp(-(v + 65)/18)
    ah = 0.07*exp(-(v + 65)/20)
    bh = 1/(exp(-(v + 35)/10) + 1)
    an = 0.1*exprelr(-(v + 55)/10)
    bn = 0.125*exp(-(v + 65)/80)
    m = am/(am + bm)
    h = ah/(ah + bh)
    n = an/(an + bn)
}

DERIVATIVE states {
    LOCAL q10, am, bm, ah, bh, an, bn
    q10 = 3^((celsius - 6.3)/10)
    am = exprelr(-(v + 40)/10)
    bm = 4*exp(-(v + 65)/18)
    ah = 0.07*exp(-(v + 65)/20)
    bh = 1/(exp(-(v + 35)/10) + 1)
    an = 0.1*exprelr(-(v + 55)/10)
    bn = 0.125*exp(-(v + 65)/80)
    m' = q10*(am*(1 - m) - bm*m)
    h' = q10*(ah*(1 - h) - bh*h)
    n' = q10*(an*(1 - n) - bn*n)
}
