:Delayed rectifier K+ channel, squeezed onto few lines as some generated files are
NEURON{SUFFIX kdr USEION k READ ek WRITE ik RANGE gbar,ik GLOBAL ninf,ntau}
UNITS{(mA)=(milliamp) (mV)=(millivolt) (S)=(siemens)}
PARAMETER{gbar=.036(S/cm2)<0,1>  vhalf=-40(mV) slope=-1e1(mV) tmin=0.5(ms)}
STATE{n}  ASSIGNED{v(mV) ek(mV) ik(mA/cm2) ninf ntau(ms)}
INITIAL{rates(v) n=ninf}
BREAKPOINT{SOLVE states METHOD cnexp ik=gbar*n^4*(v-ek)}
DERIVATIVE states{rates(v) n'=(ninf-n)/ntau}
PROCEDURE rates(v(mV)){LOCAL a ninf=1/(1+exp((v-vhalf)/slope)) a=exp(-((v+40)/30)^2)
ntau=tmin+5*a if(ntau<tmin){ntau=tmin}}
