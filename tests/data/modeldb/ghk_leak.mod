TITLE GHK leaks with a permeability of 0 (written for gradgen's tests)
: ModelDB style (121600 leak): each ion's leak is p*ghk(v, ci, co, z), some with p = 0. The
: finite differences of pca = 0 must not step to a negative permeability.

NEURON {
	SUFFIX ghkleak
	USEION k READ ki, ko WRITE ik
	USEION ca READ cai, cao WRITE ica
	RANGE pk, pca
}

UNITS {
	(mV) = (millivolt)
	(mA) = (milliamp)
	(mM) = (milli/liter)
	FARADAY = 96485.3 (coul)
	R = 8.314 (volt-coul/degC)
}

PARAMETER {
	pk = 3e-6 (cm/s)
	pca = 0 (cm/s)
	celsius (degC)
}

ASSIGNED {
	v (mV)
	ki (mM)
	ko (mM)
	cai (mM)
	cao (mM)
	ik (mA/cm2)
	ica (mA/cm2)
}

BREAKPOINT {
	ik = pk*ghk(v, ki, ko, 1)
	ica = pca*ghk(v, cai, cao, 2)
}

FUNCTION ghk(v (mV), ci (mM), co (mM), z) (millicoul/cm3) {
	LOCAL w
	w = v*(.001)*z*FARADAY/(R*(celsius + 273.15))
	ghk = -(.001)*z*FARADAY*(co - ci*exp(w))*w/(exp(w) - 1)
}
