: Inferior-olive axon (de Gruijl et al. 2012, as modified by Negrello et al. 2019), written
: for gradgen from the equations in the model description: Na, K and leak. Conductances in
: S/cm2 (0.1 x the kS/m2 of the model description); reversal potentials are parameters.

NEURON {
    SUFFIX io_axon
    NONSPECIFIC_CURRENT i
    RANGE g_Na_a, g_K_a, g_la, V_Na, V_K, V_l
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    g_Na_a = 0.02 (S/cm2)
    g_K_a = 0.02 (S/cm2)
    g_la = 1.3e-6 (S/cm2)
    V_Na = 55 (mV)
    V_K = -75 (mV)
    V_l = 10 (mV)
}

STATE { h x }

BREAKPOINT {
    : the instantaneous Na activation is written out: modcc then linearises the current
    : with its full derivative in v, as gradgen does (through a FUNCTION it would not)
    SOLVE states METHOD cnexp
    i = g_la*(v - V_l) + g_Na_a*(1/(1 + exp(-(v + 30)/5.5)))^3*h*(v - V_Na) + g_K_a*x*x*x*x*(v - V_K)
}

INITIAL {
    LOCAL ax, bx
    h = 1/(1 + exp((v + 60)/5.8))
    ax = 1.3*exprelr(-(v + 25)/10)
    bx = 1.69*exp(-(v + 35)/80)
    x = ax/(ax + bx)
}

DERIVATIVE states {
    LOCAL h_inf, tau_h, ax, bx
    h_inf = 1/(1 + exp((v + 60)/5.8))
    tau_h = 1.5*exp(-(v + 40)/33)
    ax = 1.3*exprelr(-(v + 25)/10)
    bx = 1.69*exp(-(v + 35)/80)
    h' = (h_inf - h)/tau_h
    x' = ax - (ax + bx)*x
}
