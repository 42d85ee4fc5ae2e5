TITLE A state with a nonlinear ODE (Michaelis-Menten removal) under derivimplicit (written for gradgen's tests)
: The style of ModelDB 17664 CalciumP: NEURON steps it by backward Euler (Newton), Arbor by sparse.
NEURON {
    SUFFIX nl_pool
    USEION k READ ek WRITE ik
    RANGE gbar, kt, kd, tau
}
PARAMETER { gbar = 0.003 (S/cm2) kt = 0.4 kd = 0.3 tau = 4 (ms) }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) }
STATE { s }
INITIAL { s = 0.5 }
BREAKPOINT {
    SOLVE st METHOD derivimplicit
    ik = gbar*s*(v - ek)
}
DERIVATIVE st { s' = -kt*s/(s + kd) + (1/(1 + exp(-(v + 50)/4)) - s)/tau }
