: Hodgkin-Huxley squid axon channels, written in the style of Arbor's default catalogue:
: rates in a PROCEDURE, exprelr for the removable singularities, a q10 from celsius.

NEURON {
    SUFFIX hh
    USEION na READ ena WRITE ina
    USEION k READ ek WRITE ik
    NONSPECIFIC_CURRENT il
    RANGE gnabar, gkbar, gl, el, q10
    GLOBAL minf, hinf, ninf, mtau, htau, ntau
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gnabar =   0.12 (S/cm2)
    gkbar  =  0.036 (S/cm2)
    gl     = 0.0003 (S/cm2)
    el     = -54.3  (mV)
    celsius         (degC)
}

STATE { m h n }

ASSIGNED {
    q10
    minf hinf ninf
    mtau (ms) htau (ms) ntau (ms)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    LOCAL gk, gna, n2

    n2 = n*n
    gk = gkbar*n2*n2
    gna = gnabar*m*m*m*h
    ina = gna*(v - ena)
    ik = gk*(v - ek)
    il = gl*(v - el)
}

INITIAL {
    q10 = 3^((celsius - 6.3)*0.1)
    rates(v)
    m = minf
    h = hinf
    n = ninf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m)/mtau
    h' = (hinf - h)/htau
    n' = (ninf - n)/ntau
}

PROCEDURE rates(v (mV)) {
    LOCAL alpha, beta, sum

    : sodium activation system
    alpha = exprelr(-0.1*v - 4)
    beta  = 4*exp(-(v + 65)/18)
    sum   = alpha + beta
    mtau  = 1/(q10*sum)
    minf  = alpha/sum

    : sodium inactivation system
    alpha = 0.07*exp(-(v + 65)/20)
    beta  = 1/(exp(-0.1*v - 3.5) + 1)
    sum   = alpha + beta
    htau  = 1/(q10*sum)
    hinf  = alpha/sum

    : potassium activation system
    alpha = 0.1*exprelr(-0.1*v - 5.5)
    beta  = 0.125*exp(-(v + 65)/80)
    sum   = alpha + beta
    ntau  = 1/(q10*sum)
    ninf  = alpha/sum
}
