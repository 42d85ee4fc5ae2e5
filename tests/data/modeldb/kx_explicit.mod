TITLE Two-state K channel stepped by a SOLVEd PROCEDURE (NEURON style, written for gradgen's tests)
: The style of many ModelDB channels: rates in a PROCEDURE with TABLE, explicit updates
: with dt in a PROCEDURE that BREAKPOINT SOLVEs without METHOD, VERBATIM return 0.

NEURON {
	SUFFIX kx
	USEION k READ ek WRITE ik
	RANGE gbar, vh
	GLOBAL a, b
}

UNITS {
	(mA) = (milliamp)
	(mV) = (millivolt)
}

INDEPENDENT {t FROM 0 TO 1 WITH 1 (ms)}

PARAMETER {
	v (mV)
	dt (ms)
	celsius = 6.3 (degC)
	gbar = 0.02 (mho/cm2)
	vh = -40 (mV)
	slope = 9 (mV)
	tau = 3 (ms)
}

STATE { c o }

ASSIGNED {
	ek (mV)
	ik (mA/cm2)
	a (/ms)
	b (/ms)
}

BREAKPOINT {
	SOLVE step
	ik = gbar*o*o*(v - ek)
}

UNITSOFF
INITIAL {
	rates(v)
	o = a/(a + b)
	c = 1 - o
}

PROCEDURE step() {
	rates(v)
	c = c + dt*(b*o - a*c)
	o = o + dt*(a*c - b*o)   : reads the c just updated: the statements run in order
	VERBATIM
	return 0;
	ENDVERBATIM
}

PROCEDURE rates(v (mV)) { LOCAL q10
	TABLE a, b DEPEND celsius FROM -100 TO 100 WITH 200
	q10 = 3^((celsius - 6.3)/10)
	a = q10/(tau*(1 + exp(-(v - vh)/slope)))
	b = q10/(tau*(1 + exp((v - vh)/slope)))
}
UNITSON
