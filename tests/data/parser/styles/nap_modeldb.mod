TITLE  Persistent Na current, in the style of a 1990s ModelDB file

COMMENT
  Imitates a published NEURON file: tabs, comments everywhere, GLOBAL rate variables,
  a TABLE, UNITSOFF/UNITSON, numbers with units inside expressions, unit factors,
  a procedure that assigns several variables and nested if/else.
ENDCOMMENT

INDEPENDENT	{t FROM 0 TO 1 WITH 1 (ms)}

UNITS	{
	(mA) 	= 	(milliamp)	: current
	(mV)	= (millivolt)
	(S) = (siemens)
}

NEURON	{
	SUFFIX	nap				: persistent
	USEION	na	READ	ena	WRITE	ina
	RANGE	gnapbar,	ina
	GLOBAL	minf, mtau, vhalf	? old-style comment
}

PARAMETER	{
	gnapbar	=	0.0001	(S/cm2)	<0,1e9>
	vhalf	=	-52.6	(mV)
	k	=	4.6	(mV)
	celsius		(degC)
	v	(mV)
}

ASSIGNED	{ ina (mA/cm2)	minf	mtau (ms) }

STATE	{ m }

BREAKPOINT	{
	SOLVE	states	METHOD	cnexp	: integrate m
	ina	= gnapbar	*m*(v-ena)
}

INITIAL	{ settables(v)	m	=	minf }

DERIVATIVE	states	{
	settables(v)
	m'	=	(minf	-	m)	/	mtau
}

UNITSOFF
PROCEDURE settables(v (mV)) {
	LOCAL	x, tq
	TABLE	minf, mtau	DEPEND	celsius	FROM	-120	TO	40	WITH	641
	tq = 3^((celsius - 21 (degC))/(10 (degC)))
	x = (v - vhalf)/k
	minf = 1/(1 + exp(-x))
	if (v < -60 (mV)) {
		mtau = 2/tq
	} else {
		if (v < -20) {			: nested if
			mtau = (1 + 0.01*(v + 60))/tq
		} else {
			mtau = 1.4/tq
		}
	}
}
UNITSON
