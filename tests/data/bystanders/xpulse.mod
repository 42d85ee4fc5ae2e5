: Adds an amount to a diffusive ion x's xd on every event and lets it decay: no current,
: and nothing a channel reads, so it cannot move V (a bystander, like Arbor's inject).

NEURON {
    POINT_PROCESS xpulse
    USEION x READ xd WRITE xd
    RANGE alpha
    GLOBAL rate
}

PARAMETER {
    alpha = 200
    rate = 0.1 (/ms)
}

ASSIGNED { beta }

INITIAL { beta = 0 }

BREAKPOINT {
    xd = xd*(1 - rate*dt) + beta
    beta = 0
}

NET_RECEIVE(weight) {
    beta = alpha*weight
}
