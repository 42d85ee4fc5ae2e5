: Inferior-olive soma (de Gruijl et al. 2012, as modified by Negrello et al. 2019), written
: for gradgen from the equations in the model description: low-threshold Ca (CaL), Na,
: delayed-rectifier K (Kdr), K and leak. Conductances in S/cm2 (0.1 x the kS/m2 of the
: model description); reversal potentials are parameters, no Arbor ions are used, so the
: mechanism is self-contained.

NEURON {
    SUFFIX io_soma
    NONSPECIFIC_CURRENT i
    RANGE g_CaL, g_Na_s, g_Kdr_s, g_K_s, g_ls, V_Ca, V_Na, V_K, V_l
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    g_CaL = 0.0015 (S/cm2)
    g_Na_s = 0.003 (S/cm2)
    g_Kdr_s = 0.003 (S/cm2)
    g_K_s = 0.0015 (S/cm2)
    g_ls = 1.3e-6 (S/cm2)
    V_Ca = 120 (mV)
    V_Na = 55 (mV)
    V_K = -75 (mV)
    V_l = 10 (mV)
}

STATE { k l h n x }

BREAKPOINT {
    : the instantaneous Na activation is written out: modcc then linearises the current
    : with its full derivative in v, as gradgen does (through a FUNCTION it would not)
    SOLVE states METHOD cnexp
    i = g_ls*(v - V_l) + g_CaL*k*k*k*l*(v - V_Ca) + g_Na_s*(1/(1 + exp(-(v + 30)/5.5)))^3*h*(v - V_Na) + g_Kdr_s*n*n*n*n*(v - V_K) + g_K_s*x*x*x*x*(v - V_K)
}

INITIAL {
    LOCAL ax, bx
    k = 1/(1 + exp(-(v + 61)/4.2))
    l = 1/(1 + exp((v + 85)/8.5))
    h = 1/(1 + exp((v + 70)/5.8))
    n = 1/(1 + exp(-(v + 3)/10))
    ax = 1.3*exprelr(-(v + 25)/10)
    bx = 1.69*exp(-(v + 35)/80)
    x = ax/(ax + bx)
}

DERIVATIVE states {
    LOCAL k_inf, l_inf, tau_l, h_inf, tau_h, n_inf, tau_n, ax, bx
    k_inf = 1/(1 + exp(-(v + 61)/4.2))
    l_inf = 1/(1 + exp((v + 85)/8.5))
    tau_l = 20*exp((v + 160)/30)/(1 + exp((v + 84)/7.3)) + 35
    h_inf = 1/(1 + exp((v + 70)/5.8))
    tau_h = 3*exp(-(v + 40)/33)
    n_inf = 1/(1 + exp(-(v + 3)/10))
    tau_n = 5 + 47*exp((v + 50)/900)
    ax = 1.3*exprelr(-(v + 25)/10)
    bx = 1.69*exp(-(v + 35)/80)
    k' = k_inf - k
    l' = (l_inf - l)/tau_l
    h' = (h_inf - h)/tau_h
    n' = (n_inf - n)/tau_n
    x' = ax - (ax + bx)*x
}
