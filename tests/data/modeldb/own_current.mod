TITLE A current the mechanism writes, read by its DERIVATIVE block (written for gradgen's tests)
: The style of ModelDB 180370 mAHP: the Ca pool is driven by the channel's own ica, which
: NEURON's nrn_state reads as nrn_cur left it (at the step's old voltage and states).
NEURON {
    SUFFIX own_current
    USEION ca READ eca WRITE ica
    USEION k READ ek WRITE ik
    RANGE gca, gk, depth, taur
}
PARAMETER { gca = 0.0002 (S/cm2) gk = 0.005 (S/cm2) depth = 0.1 taur = 20 (ms) cainf = 1e-4 (mM) }
ASSIGNED { v (mV) eca (mV) ek (mV) ica (mA/cm2) ik (mA/cm2) drive }
STATE { m c (mM) }
INITIAL { m = 1/(1 + exp(-(v + 30)/6)) c = cainf }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gca*m*(v - eca)
    ik = gk*c/(c + 0.001)*(v - ek)
}
DERIVATIVE states {
    drive = -5.182*ica/depth
    if (drive <= 0) { drive = 0 }
    c' = drive + (cainf - c)/taur
    m' = (1/(1 + exp(-(v + 30)/6)) - m)/2
}
