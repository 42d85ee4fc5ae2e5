TITLE An ion concentration written in the DERIVATIVE block, not declared as STATE (written for gradgen's tests)
: The style of ModelDB 151825/123897 cad: cai = ca after ca' = ...; METHODX is set by the test.
NEURON {
    SUFFIX ca_alias
    USEION ca READ ica WRITE cai
    USEION k READ ek WRITE ik
    RANGE gbar, taur, cainf, kd
}
PARAMETER { gbar = 0.01 (S/cm2) taur = 20 (ms) cainf = 1e-4 (mM) kd = 2e-4 (mM) }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) ica (mA/cm2) cai (mM) }
STATE { ca (mM) }
INITIAL { ca = cainf }
BREAKPOINT {
    SOLVE state METHOD METHODX
    ik = gbar*ca/(ca + kd)*(v - ek)
}
DERIVATIVE state {
    ca' = -0.05*ica + (2*cainf*(1 + 0.5*exp(v/30)) - ca)/taur
    cai = ca
}
