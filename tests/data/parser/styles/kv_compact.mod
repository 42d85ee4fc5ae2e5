: compact one-liner style with odd spacing, ^, exprelr, mid-block LOCAL
NEURON{SUFFIX kv USEION k READ ek WRITE ik RANGE gbar,vh}
PARAMETER{gbar=0.01(S/cm2) vh=-30(mV) q=2.3 celsius(degC)}
STATE{n}
BREAKPOINT{SOLVE s METHOD cnexp
ik=gbar*n^2*(v-ek)}
INITIAL{n=an(v)/(an(v)+bn(v))}
DERIVATIVE s{LOCAL a  a=an(v)  LOCAL b b=bn(v)
n'=q^((celsius-22)/10)*(a*(1-n)-b*n)}
FUNCTION an(v){an=0.02*9*exprelr(-(v-vh)/9)}
FUNCTION bn(v){bn=0.002*9*exprelr((v-vh)/9)}
