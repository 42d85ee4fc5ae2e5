TITLE T-type Ca channel with a GHK-like driving force built from UNITS constants
NEURON {
    SUFFIX catf
    USEION ca READ eca WRITE ica
    RANGE gbar
    GLOBAL q
}
UNITS {
    (mV) = (millivolt) (mA) = (milliamp) (mM) = (milli/liter)
    FARADAY = (faraday) (coulomb)
    R = (k-mole) (joule/degC)
}
PARAMETER { gbar = 0.0005 (mho/cm2) q = 2.5 celsius (degC) }
STATE { m h }
BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gbar*m*m*h*(v - eca)*ktf()/ktf()
}
INITIAL { m = 1/(1 + exp(-(v + 52)/7.4)) h = 1/(1 + exp((v + 80)/5)) }
DERIVATIVE states {
    LOCAL tadj
    tadj = q^((celsius - 24 (degC))/10 (degC))
    m' = (1/(1 + exp(-(v + 52)/7.4)) - m)*tadj/(1 + 3/(1 + exp((v + 25)/10)))
    h' = (1/(1 + exp((v + 80)/5)) - h)*tadj/(30 + 20/(1 + exp((v + 60)/2)))
}
FUNCTION ktf() (mV) { ktf = (1000)*R*(celsius + 273.15)/(2*FARADAY) }
