: High-voltage-activated Ca channel (m^2 h), writing the Ca current that cad integrates.
: Written for gradgen's standard set.
NEURON {
    SUFFIX cahva
    USEION ca READ eca WRITE ica
    RANGE gbar
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gbar = 0.0005 (S/cm2)
}

STATE { m h }

INITIAL {
    m = minf(v)
    h = hinf(v)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gbar*m*m*h*(v - eca)
}

DERIVATIVE states {
    m' = (minf(v) - m)/mtau(v)
    h' = (hinf(v) - h)/htau(v)
}

FUNCTION minf(v) { minf = 1/(1 + exp(-(v + 20)/6)) }
FUNCTION mtau(v) { mtau = 0.4 + 1.2/(1 + exp((v + 25)/10)) }
FUNCTION hinf(v) { hinf = 1/(1 + exp((v + 40)/7)) }
FUNCTION htau(v) { htau = 20 + 50/(1 + exp((v + 30)/10)) }
