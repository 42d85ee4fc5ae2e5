: Persistent Na current whose instantaneous activation is a FUNCTION of v called in the current:
: modcc's conductance is gbar*minf*h (the call taken as independent of v), not ∂ina/∂v.

NEURON {
    SUFFIX napf
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
    ina = gbar*minf(v)*h*(v - ena)
}

DERIVATIVE states {
    h' = (1/(1 + exp((v + 49)/10)) - h)/50
}

FUNCTION minf(v) { minf = 1/(1 + exp(-(v - vhalf)/4.6)) }
