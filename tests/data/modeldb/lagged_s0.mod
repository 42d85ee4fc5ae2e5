TITLE A value read before its assignment in the DERIVATIVE block (written for gradgen's tests)
: The style of ModelDB 121600 ih: s0 = 1 - s1 - s2 is set after the ODEs read it, so NEURON reads
: the value the previous step left.
NEURON {
    SUFFIX lagged_s0
    USEION k READ ek WRITE ik
    RANGE gbar, a, b, k2
}
PARAMETER { gbar = 0.004 (S/cm2) a = 0.3 b = 0.2 k2 = 0.5 }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) s0 }
STATE { s1 s2 }
INITIAL { s1 = 0.2 s2 = 0.1 s0 = 1 - s1 - s2 }
BREAKPOINT {
    SOLVE st METHOD euler
    ik = gbar*(s1 + s2)*(v - ek)
}
DERIVATIVE st {
    s1' = a*exp(v/40)*s0 - b*s1 + k2*(s2 - 0.5*s1)
    s2' = -k2*(s2 - 0.5*s1)
    s0 = 1 - s1 - s2
}
