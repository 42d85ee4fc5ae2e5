: Persistent Na current whose instantaneous activation is a LOCAL of v in BREAKPOINT:
: modcc's conductance is gbar*minf*h (the LOCAL taken as independent of v), not ∂ina/∂v.

NEURON {
    SUFFIX napl
    USEION na READ ena WRITE ina
    RANGE gbar
}

PARAMETER {
    gbar = 0.002 (S/cm2)
    vhalf = -52 (mV)
}

STATE { h }

INITIAL { h = 1/(1 + exp((v + 49)/10)) }

BREAKPOINT {
    SOLVE states METHOD cnexp
    LOCAL minf
    minf = 1/(1 + exp(-(v - vhalf)/4.6))
    ina = gbar*minf*h*(v - ena)
}

DERIVATIVE states {
    h' = (1/(1 + exp((v + 49)/10)) - h)/50
}
