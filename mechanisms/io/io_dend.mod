: Inferior-olive dendrite (de Gruijl et al. 2012, as modified by Negrello et al. 2019),
: written for gradgen from the equations in the model description: high-threshold Ca (CaH),
: Ca-activated K (K_Ca), H current, leak, and the Ca concentration that links CaH to K_Ca.
: The concentration lives inside this mechanism (no Arbor ion), so the whole Ca loop is one
: mechanism and its sensitivities are exact.
:
: dCa/dt = -3*I_CaH - 0.075*Ca with I_CaH in A/m2; here I_CaH is in mA/cm2 = 10 A/m2,
: hence the factor 30. modcc's cnexp takes each derivative as linear in its own state only:
: the influx and the Ca-dependent rate of s are LOCALs, evaluated from the states at the
: start of the step (as modcc warns). s and Ca are updated before r and q, so that
: "start of the step" and "updated in place, in order" (gradgen's reading) are the same map.
: The model caps alpha_s = min(2e-5*Ca, 0.01); the cap binds only for Ca >= 500, far above
: anything these cells reach (Ca stays below 10 in the project's runs), and it is left out
: because gradgen 0.1 emits if/else (and fabs) in derivatives as code modcc rejects.
: cah_current switches I_CaH in the membrane current: 0 (default) as in the study's code,
: which kept I_CaH only in the Ca equation and is the setting of its tuning experiment; 1 as
: in the published model (on the project's cells it latches the cell to a depolarised
: plateau, +6 to +11 mV, instead of oscillating).

NEURON {
    SUFFIX io_dend
    NONSPECIFIC_CURRENT i
    RANGE g_CaH, g_K_Ca, g_h, g_ld, V_Ca, V_K, V_h, V_l, cah_current
}

UNITS {
    (mV) = (millivolt)
    (S) = (siemens)
    (mA) = (milliamp)
}

PARAMETER {
    g_CaH = 0.009 (S/cm2)
    g_K_Ca = 0.03 (S/cm2)
    g_h = 0.0025 (S/cm2)
    g_ld = 1.3e-6 (S/cm2)
    V_Ca = 120 (mV)
    V_K = -75 (mV)
    V_h = -43 (mV)
    V_l = 10 (mV)
    cah_current = 0
}

STATE { s Ca r q }

BREAKPOINT {
    SOLVE states METHOD cnexp
    i = g_ld*(v - V_l) + cah_current*g_CaH*r*r*(v - V_Ca) + g_K_Ca*s*(v - V_K) + g_h*q*(v - V_h)
}

INITIAL {
    LOCAL ar, br, as, bs
    ar = 1.7/(1 + exp(-(v - 5)/13.9))
    br = 0.1*exprelr((v + 8.5)/5)
    r = ar/(ar + br)
    Ca = 3.715
    as = 2e-5*Ca
    bs = 0.015
    s = as/(as + bs)
    q = 1/(1 + exp((v + 80)/4))
}

DERIVATIVE states {
    LOCAL ar, br, as, bs, q_inf, tau_q, ca_influx
    ar = 1.7/(1 + exp(-(v - 5)/13.9))
    br = 0.1*exprelr((v + 8.5)/5)
    as = 2e-5*Ca
    bs = 0.015
    q_inf = 1/(1 + exp((v + 80)/4))
    ca_influx = -30*g_CaH*r*r*(v - V_Ca)
    tau_q = 1/(exp(-0.086*v - 14.6) + exp(0.070*v - 1.87))
    s' = as - (as + bs)*s
    Ca' = ca_influx - 0.075*Ca
    r' = (ar - (ar + br)*r)/5
    q' = (q_inf - q)/tau_q
}
