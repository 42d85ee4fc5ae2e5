TITLE A Ca leak that drives a Ca pool (written for gradgen's tests)
NEURON {
    SUFFIX ca_leak
    USEION ca WRITE ica
    RANGE g
}
PARAMETER { g = 0.0002 (S/cm2) }
ASSIGNED { v (mV) ica (mA/cm2) }
BREAKPOINT { ica = g*(v - 120) }
