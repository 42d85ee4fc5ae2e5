TITLE Four-state K channel as a NEURON KINETIC scheme (DEFINE, CONSERVE, COMPARTMENT)

NEURON {
    SUFFIX k4
    USEION k READ ek WRITE ik
    RANGE gbar
}

DEFINE NSTEP 2   : a DEFINE'd number used as a constant

UNITS { (mV) = (millivolt) (mA) = (milliamp) }

PARAMETER { gbar = 0.01 (mho/cm2) a0 = 0.1 (/ms) b0 = 0.05 (/ms) }

STATE { c1 c2 o i }

BREAKPOINT {
    SOLVE kin METHOD sparse
    ik = gbar*o*(v - ek)
}

INITIAL { SOLVE kin STEADYSTATE sparse }

KINETIC kin {
    LOCAL a, b
    rates(v)                          : sets a and b through the caller's scope
    a = a0*exp(v/(25 (mV)))
    b = b0*exp(-v/(25 (mV)))
    COMPARTMENT 1 {c1 c2 o i}
    ~ c1 <-> c2 (NSTEP*a, b)
    ~ c2 <-> o  (a, NSTEP*b)
    ~ o  <-> i  (0.02, 0.004)
    CONSERVE c1 + c2 + o + i = 1
}

PROCEDURE rates(v (mV)) { }
