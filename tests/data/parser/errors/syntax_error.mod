COMMENT
A comment block, so that the error's line is not simply the count of code lines.
ENDCOMMENT
NEURON { SUFFIX broken }
PARAMETER { g = 0.1 (S/cm2) }
BREAKPOINT {
    : the next line closes one parenthesis too many
    i = g*(v - 10))
}
