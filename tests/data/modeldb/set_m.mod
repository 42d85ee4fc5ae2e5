TITLE A STATE assigned in the DERIVATIVE block (written for gradgen's tests)
: The style of ModelDB 150621 Nam: rates(v) sets m = minf in the solved block, h has an ODE.
NEURON {
    SUFFIX set_m
    USEION na READ ena WRITE ina
    RANGE gbar, phi
}
PARAMETER { gbar = 0.02 (S/cm2) phi = 2 }
ASSIGNED { v (mV) ena (mV) ina (mA/cm2) minf ah bh }
STATE { m h }
INITIAL { rates(v) h = ah/(ah + bh) }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = gbar*m^3*h*(v - ena)
}
DERIVATIVE states {
    rates(v)
    h' = phi*(ah*(1 - h) - bh*h)
}
PROCEDURE rates(v (mV)) {
    minf = 1/(1 + exp(-(v + 30)/7))
    ah = 0.07*exp(-(v + 58)/20)
    bh = 1/(1 + exp(-(v + 28)/10))
    m = minf
}
