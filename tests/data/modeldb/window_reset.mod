TITLE States reset inside a time window before their ODEs (written for gradgen's tests)
: The style of ModelDB 145836 SynExp3NMDA2: the DERIVATIVE block calls a PROCEDURE that sets
: states to 0 while 5 < t < 8 ms; outside the window the ODEs run from the states as they are.
NEURON {
    SUFFIX window_reset
    NONSPECIFIC_CURRENT i
    RANGE g, e, tau
}
PARAMETER { g = 0.002 (S/cm2) e = -80 (mV) tau = 3 (ms) }
ASSIGNED { v (mV) i (mA/cm2) }
STATE { a b }
INITIAL { a = 0.2 b = 0.5 }
BREAKPOINT {
    SOLVE states METHOD METHODX
    i = g*(a + b)*(v - e)
}
DERIVATIVE states {
    reset()
    a' = (1 - a)/tau
    b' = (a - b)/tau
}
PROCEDURE reset() {
    if (t > 5 && t < 8) {
        a = 0
        b = 0
    }
}
