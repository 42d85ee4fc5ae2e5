: An ohmic point process (a "shunt" electrode), no events.
NEURON { POINT_PROCESS shunt  NONSPECIFIC_CURRENT i  RANGE g, e }
UNITS { (nA) = (nanoamp)  (uS) = (microsiemens)  (mV) = (millivolt) }
PARAMETER { g = 0.001 (uS) <0, 1e9>   e = 0 (mV) }
ASSIGNED { v (mV) i (nA) }
BREAKPOINT { i = g*(v - e) }
