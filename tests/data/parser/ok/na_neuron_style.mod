TITLE  Fast sodium channel, NEURON style (imitation of a ModelDB file)

COMMENT
Voltage-dependent Na+ current after a 1990s cortical model.
  Units: mV, ms. The rate functions use vtrap() to avoid 0/0 : at v = -35.
  NONSENSE { } that the parser must never see: VERBATIM TABLE KINETIC x[3] ~
ENDCOMMENT

NEURON	{
	SUFFIX na3 : tab-indented, like many ModelDB files
	USEION na READ ena WRITE ina
	RANGE gbar, ina,
	      minf, hinf  ? continued over two lines
	GLOBAL vhalf, q10, tadj
	THREADSAFE
}

UNITS {
	(mA) = (milliamp)
	(mV) = (millivolt)
	(pS) = (picosiemens)
	(um) = (micron)
}

PARAMETER {
	gbar = 1000   	(pS/um2)	<0,1e9>
	vhalf = -35 (mV) < -100 , 100 >
	q10  = 2.3
	temp = 23	(degC)		: original temp
	v 		(mV)
	dt		(ms)
	celsius		(degC)
	ena		(mV)
}

ASSIGNED {
	ina 		(mA/cm2)
	minf 		hinf
	mtau (ms)	htau (ms)
	tadj
}

STATE { m FROM 0 TO 1  h }

INITIAL {
	trates(v)
	m = minf
	h = hinf
}

BREAKPOINT {
	SOLVE states METHOD derivimplicit
	ina = (1e-4)*gbar*m*m*m*h*(v - ena)   : pS/um2 -> mho/cm2
}

DERIVATIVE states {   :Computes state variables m, h
	trates(v)      :             at the current v and dt.
	m' =  (minf-m)/mtau
	h'=(hinf-h)/htau
}

PROCEDURE trates(v (mV)) {  :Computes rate and other constants at current v.
	LOCAL a, b
	tadj = q10^((celsius - temp)/(10 (degC)))
	a = alpm(v)
	b = betm(v)
	mtau = 1/tadj/(a+b)
	minf = a/(a+b)
	if (mtau<.01) {mtau=.01}
	a = 0.024*vtrap(-(v - vhalf), 5)
	b = 0.0091*vtrap((v+70), 5)
	htau = 1/tadj/(a + b)
	if(htau < 0.5){
		htau = 0.5
	}else if (htau>1.5E+2 && v > -20){
		htau = 1.5E+2
	} else {
		htau = htau
	}
	hinf = 1/(1+exp((v+65)/6.2))
}

FUNCTION alpm(v (mV)) (/ms) {
	alpm = 0.182*vtrap(-(v+35), 9)
}

FUNCTION betm(v(mV)) (/ms) {
	betm = 0.124*vtrap((v+35),9)
}

FUNCTION vtrap(x, y) {  : Traps for 0 in denominator of rate eqns.
	if (fabs(x/y) < 1e-6) {
		vtrap = y*(1 - x/y/2)
	} else {
		vtrap = x/(exp(x/y) - 1)
	}
}
