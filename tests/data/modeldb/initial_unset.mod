TITLE INITIAL reads an ASSIGNED value BREAKPOINT sets (written for gradgen's tests)
: The style of ModelDB 98017 ICan: m = minf in INITIAL reads NEURON's start value of an ASSIGNED, 0.
NEURON {
    SUFFIX initial_unset
    USEION k READ ek WRITE ik
    RANGE gbar, alpha, beta
}
PARAMETER { gbar = 0.003 (S/cm2) alpha = 0.2 beta = 0.05 }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) minf taum }
STATE { m }
INITIAL { m = minf }
BREAKPOINT {
    SOLVE state METHOD cnexp
    rates()
    ik = gbar*m*(v - ek)
}
DERIVATIVE state { m' = (minf - m)/taum }
PROCEDURE rates() {
    taum = 1/(alpha + beta)
    minf = alpha*taum
}
