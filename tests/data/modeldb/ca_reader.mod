TITLE A K current gated by cai, the partner that lets a Ca pool move V (written for gradgen's tests)
NEURON {
    SUFFIX ca_reader
    USEION ca READ cai
    USEION k READ ek WRITE ik
    RANGE gbar, kd
}
PARAMETER { gbar = 0.01 (S/cm2) kd = 0.0003 (mM) }
ASSIGNED { v (mV) ek (mV) ik (mA/cm2) cai (mM) }
BREAKPOINT { ik = gbar*cai/(cai + kd)*(v - ek) }
