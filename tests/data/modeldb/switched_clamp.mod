TITLE A decaying conductance clamp switched on by t (written for gradgen's tests)
: ModelDB style (116094 stim2): an ELECTRODE_CURRENT point process on from del to del + dur,
: with del, dur and amp 0 by default (set from hoc), so at the defaults it never acts.

NEURON {
	POINT_PROCESS swclamp
	RANGE del, dur, amp, tau, erev, i
	ELECTRODE_CURRENT i
}

UNITS {
	(nA) = (nanoamp)
	(mV) = (millivolt)
}

PARAMETER {
	del (ms)
	dur (ms)
	amp (uS)
	tau = 5 (ms)
	erev = -90 (mV)
}

ASSIGNED { i (nA) v (mV) }

INITIAL { i = 0 }

BREAKPOINT {
	if (t < del + dur && t >= del) {
		i = amp*exp(-(t - del)/tau)*(v - erev)
	} else {
		i = 0
	}
}
