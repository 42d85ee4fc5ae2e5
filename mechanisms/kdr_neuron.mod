TITLE Delayed-rectifier K channel in the NEURON dialect (written for gradgen)

COMMENT
A channel in the style of published NEURON models: INDEPENDENT, UNITSOFF/UNITSON around
the rate procedure, a TABLE over v, a vtrap() guard with if/else, GLOBAL rate variables,
unit factors inside expressions and a q10 with celsius. Arbor cannot compile this file;
`gradgen translate` turns it into NMODL that modcc accepts.
ENDCOMMENT

INDEPENDENT { t FROM 0 TO 1 WITH 1 (ms) }

NEURON {
	SUFFIX kdrn
	USEION k READ ek WRITE ik
	RANGE gkbar, ik
	GLOBAL ninf, ntau, q10
	THREADSAFE
}

UNITS {
	(mA) = (milliamp)
	(mV) = (millivolt)
	(S) = (siemens)
}

PARAMETER {
	v (mV)
	celsius = 6.3 (degC)
	dt (ms)
	ek (mV)
	gkbar = .036 (S/cm2)	<0,1e9>
	q10 = 3
	vhalf = -55 (mV)
}

STATE { n }

ASSIGNED {
	ik (mA/cm2)
	ninf
	ntau (ms)
}

BREAKPOINT {
	SOLVE states METHOD derivimplicit
	ik = gkbar*n*n*n*n*(v - ek)
}

INITIAL {
	rates(v)
	n = ninf
}

DERIVATIVE states {
	rates(v)
	n' = (ninf - n)/ntau
}

UNITSOFF
PROCEDURE rates(v (mV)) {  :Computes ninf and ntau at v
	LOCAL alpha, beta, sum, tadj
	TABLE ninf, ntau DEPEND celsius FROM -100 TO 100 WITH 200
	tadj = q10^((celsius - 6.3 (degC))/(10 (degC)))
	alpha = .01*vtrap(-(v - vhalf), 10)
	beta = .125*exp(-(v - vhalf + 10 (mV))/80)
	sum = alpha + beta
	ntau = 1/(tadj*sum)
	ninf = alpha/sum
}

FUNCTION vtrap(x, y) {  :Traps for 0 in denominator of rate eqns.
	if (fabs(x/y) < 1e-6) {
		vtrap = y*(1 - x/y/2)
	} else {
		vtrap = x/(exp(x/y) - 1)
	}
}
UNITSON
