: an exponential synapse, NEURON style: ASSIGNED current, units on the event argument
NEURON { POINT_PROCESS expsyn2 RANGE tau, e NONSPECIFIC_CURRENT i }
UNITS { (nA) = (nanoamp) (mV) = (millivolt) (uS) = (microsiemens) }
PARAMETER { tau = 2 (ms) e = 0 (mV) }
ASSIGNED { i (nA) }
STATE { g (uS) }
INITIAL { g = 0 }
BREAKPOINT {
    SOLVE state METHOD cnexp
    i = g*(v - e)
}
DERIVATIVE state { g' = -g/tau }
NET_RECEIVE(weight (uS)) {
    g = g + weight
}
