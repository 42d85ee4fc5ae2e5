TITLE Persistent Na current whose activation is an ASSIGNED set in the DERIVATIVE block
: NEURON style (written for gradgen's tests): BREAKPOINT reads minf, which only the
: rates() call of the SOLVEd DERIVATIVE block assigns, as many ModelDB channels do.

NEURON {
	SUFFIX napm
	USEION na READ ena WRITE ina
	RANGE gbar
	GLOBAL minf, hinf, htau
}

PARAMETER {
	gbar = 0.0002 (mho/cm2) <0,1e9>
	vm = -52 (mV)
}

STATE { h }

ASSIGNED {
	v (mV)
	ena (mV)
	ina (mA/cm2)
	minf
	hinf
	htau (ms)
}

BREAKPOINT {
	SOLVE states METHOD cnexp
	ina = gbar*minf*minf*minf*h*(v - ena)
}

INITIAL {
	rates(v)
	h = hinf
}

DERIVATIVE states {
	rates(v)
	h' = (hinf - h)/htau
}

PROCEDURE rates(v (mV)) { LOCAL alpha, beta
	minf = 1/(1 + exp(-(v - vm)/7.7))
	alpha = 0.001*exp(-(v + 85)/30)
	beta = 0.0034/(1 + exp(-(v + 17)/10))
	htau = 1/(alpha + beta)
	hinf = alpha/(alpha + beta)
}
