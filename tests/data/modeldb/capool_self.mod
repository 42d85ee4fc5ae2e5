TITLE Ca pool that reads its own cai (written for gradgen's tests)
: ModelDB style (cadecay, capump, Caint): USEION ca READ ica, cai WRITE cai. Alone with a Ca
: current whose eca is fixed, none of its parameters reaches V; under Arbor's nernst method
: (what NEURON does for an ion whose concentration a mechanism writes) eca follows cai.

NEURON {
	SUFFIX capools
	USEION ca READ ica, cai WRITE cai
	RANGE depth
	GLOBAL tau, cainf
}

UNITS {
	(mA) = (milliamp)
	(mM) = (milli/liter)
	(um) = (micron)
}

PARAMETER {
	depth = 0.2 (um)
	tau = 20 (ms)
	cainf = 5e-5 (mM)
}

ASSIGNED { ica (mA/cm2) }

STATE { cai (mM) }

INITIAL {
	cai = cainf
}

BREAKPOINT {
	SOLVE state METHOD cnexp
}

DERIVATIVE state {
	cai' = -ica*(1e4)/(2*96485.3*depth) - (cai - cainf)/tau
}
