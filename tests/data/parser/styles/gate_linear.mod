: An instantaneous two-state gate in equilibrium, written as a LINEAR block (Arbor dialect).
NEURON {
    SUFFIX gatelin
    USEION k READ ek WRITE ik
    RANGE gbar, vh
}
PARAMETER {
    gbar = 0.005 (S/cm2)
    vh = -45 (mV)
}
STATE { o c }
BREAKPOINT {
    SOLVE gate
    ik = gbar*o*(v - ek)
}
INITIAL {
    o = 0
    c = 1
}
LINEAR gate {
    LOCAL a, b
    a = exp((v - vh)/12)
    b = exp(-(v - vh)/12)
    ~ o + c = 1
    ~ a*c - b*o = 0
}
