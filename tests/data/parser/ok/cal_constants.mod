? L-type calcium current with CONSTANT, VALENCE and a procedure-style SOLVE,
? written with question-mark comments (an old NMODL habit).
NEURON {
  SUFFIX cal
  USEION ca READ cai, eca WRITE ica VALENCE 2
  RANGE gcabar, ica
  GLOBAL minf,
         mtau
}
CONSTANT {
  KTOMV = .0853 (mV/degC)
  ki = 0.001 (mM)
  ZERO = 0
}
PARAMETER {
  gcabar = 3.e-3 (mho/cm2)
  cai (mM) eca (mV) celsius (degC)
  tfa = +1
  shift = -2.5e+1 (mV)
}
STATE { m (1) }
ASSIGNED { ica (mA/cm2)  minf  mtau (ms) }
BREAKPOINT {
  SOLVE update
  ica = gcabar*m*m*h2(cai)*(v - eca)
}
INITIAL { m = alpha(v)/(alpha(v) + beta(v)) }
PROCEDURE update() {
  LOCAL a
  a = alpha(v)
  minf = a/(a + beta(v))
  mtau = max(1/(a + beta(v)), 0.1)
  m = m + (1 - exp(-dt/mtau))*(minf - m)
}
FUNCTION h2(cai (mM)) { h2 = ki/(ki + cai) }
FUNCTION alpha(v (mV)) (/ms) {
  LOCAL x
  x = (v - shift)/(-15 (mV))
  if (x == ZERO || !(fabs(x) > 1e-6)) { alpha = 15.69 } else { alpha = 15.69*x/(exp(x) - 1) }
}
FUNCTION beta(v (mV)) (/ms) {
  beta = 0.29*exp(-v/10.86)*pow(tfa, 2)*min(1, KTOMV*celsius/KTOMV/celsius)
}
