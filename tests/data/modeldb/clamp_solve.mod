TITLE SOLVE inside if/else in BREAKPOINT (written for gradgen's tests)
: The style of ModelDB 139421 capr: nocmodl runs the SOLVE every step, then the if/else (a clamp).
NEURON {
    SUFFIX clamp_solve
    USEION k READ ek WRITE ik
    RANGE gbar, beta, c0
}
PARAMETER { gbar = 0.003 (S/cm2) beta = 0.2 c0 = 0.3 }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) }
STATE { c }
INITIAL { c = c0 }
BREAKPOINT {
    if (c > 0.5) { c = 0.5 } else { SOLVE state METHOD cnexp }
    ik = gbar*c*(v - ek)
}
DERIVATIVE state { c' = 0.1*(v + 65) - beta*c }
