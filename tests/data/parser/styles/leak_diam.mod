: a leak whose conductance scales with the diameter, as some published files do
NEURON { SUFFIX leakd NONSPECIFIC_CURRENT i RANGE g, e }
PARAMETER { g = 0.0003 (S/cm2) e = -65 (mV) }
STATE { s }
BREAKPOINT { SOLVE st METHOD cnexp
  i = g*s*(diam/1 (um))*(v - e) }
INITIAL { s = 1 }
DERIVATIVE st { s' = (1 + (v + 65)/(diam*100) - s)/5 }
