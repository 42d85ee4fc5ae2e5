: Ih with its rate functions in an INCLUDEd file, as some model packages do
NEURON { SUFFIX hinc NONSPECIFIC_CURRENT ih RANGE gbar, eh }
UNITS { (mV) = (millivolt) (mA) = (milliamp) (S) = (siemens) }
PARAMETER { gbar = 1e-4 (S/cm2) eh = -40 (mV) }
STATE { m }
INCLUDE "ih_rates.inc"
BREAKPOINT { SOLVE states METHOD derivimplicit
    ih = gbar*m*(v - eh) }
INITIAL { m = minf_h(v) }
DERIVATIVE states { m' = (minf_h(v) - m)/tau_h(v) }
