: Conductance synapse with a rise (tau1) and a decay (tau2) time constant; the peak
: conductance of one event equals its weight (uS). Written for gradgen's standard set.
NEURON {
    POINT_PROCESS exp2syn
    RANGE tau1, tau2, e
    NONSPECIFIC_CURRENT i
}

UNITS {
    (mV) = (millivolt)
    (nA) = (nanoamp)
    (uS) = (microsiemens)
}

PARAMETER {
    tau1 = 0.5 (ms)  : rise, must be < tau2
    tau2 = 3 (ms)    : decay
    e = 0 (mV)
}

ASSIGNED { factor }

STATE { a (uS) b (uS) }

INITIAL {
    LOCAL tpeak
    tpeak = tau1*tau2/(tau2 - tau1)*log(tau2/tau1)
    factor = 1/(exp(-tpeak/tau2) - exp(-tpeak/tau1))
    a = 0
    b = 0
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    i = (b - a)*(v - e)
}

DERIVATIVE states {
    a' = -a/tau1
    b' = -b/tau2
}

NET_RECEIVE(weight (uS)) {
    a = a + weight*factor
    b = b + weight*factor
}
