TITLE Exponential synapse whose NET_RECEIVE uses state_discontinuity (NEURON style)
: Written for gradgen's tests; older ModelDB synapses jump their states this way.

NEURON {
	POINT_PROCESS sdsyn
	RANGE tau, e
	NONSPECIFIC_CURRENT i
}

PARAMETER {
	tau = 2 (ms)
	e = 0 (mV)
}

ASSIGNED {
	v (mV)
	i (nA)
}

STATE { g (uS) }

INITIAL { g = 0 }

BREAKPOINT {
	SOLVE state METHOD cnexp
	i = g*(v - e)
}

DERIVATIVE state { g' = -g/tau }

NET_RECEIVE(weight (uS)) {
	state_discontinuity(g, g + weight)
}
