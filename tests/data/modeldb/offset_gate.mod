TITLE A gate read only as its distance from its own start (written for gradgen's tests)
: ModelDB style (180370 mAHP's cai, read as cai - cainf after cai = cainf in INITIAL): s
: starts at sinf and relaxes towards it, and the current reads only s - sinf, so V does not
: depend on sinf at all; its finite differences are rounding.

NEURON {
	SUFFIX offgate
	USEION k READ ek WRITE ik
	RANGE gbar, sinf, tau, kv
}

UNITS {
	(mV) = (millivolt)
	(mA) = (milliamp)
	(S) = (siemens)
}

PARAMETER {
	gbar = 0.02 (S/cm2)
	sinf = 0.3
	tau = 4 (ms)
	kv = 0.01 (/mV-ms)
}

ASSIGNED { v (mV) ek (mV) ik (mA/cm2) }

STATE { s }

INITIAL { s = sinf }

BREAKPOINT {
	SOLVE states METHOD cnexp
	ik = gbar*(s - sinf)*(s - sinf)*(v - ek)
}

DERIVATIVE states {
	s' = (sinf - s)/tau + kv*(v + 65)
}
