TITLE uses C code
NEURON { SUFFIX rnd RANGE x }
ASSIGNED { x }
BREAKPOINT { draw() }
PROCEDURE draw() {
  : VERBATIM in a comment does not count
    VERBATIM
    _lx = (scop_random() > 0.5) ? 1.0 : 0.0; /* COMMENT without end */
    ENDVERBATIM
}
