: Intracellular Ca dynamics in a thin shell under the membrane: influx from ica, decay.
: Written for gradgen's standard set.
NEURON {
    SUFFIX cad
    USEION ca READ ica WRITE cai
    RANGE depth, taur, cainf
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
    (um) = (micron)
}

PARAMETER {
    depth = 0.1 (um)     : shell depth
    taur = 80 (ms)       : decay time constant
    cainf = 1e-4 (mM)    : resting concentration
}

STATE { cai (mM) }

INITIAL {
    cai = cainf
}

BREAKPOINT {
    SOLVE states METHOD cnexp
}

DERIVATIVE states {
    : 1e4/(2 F) converts mA/cm2 over a shell of depth um into mM/ms (F = 96485.3 C/mol)
    cai' = -ica*10000/(2*96485.3*depth) - (cai - cainf)/taur
}
