"""The forward-sensitivity system of a lowered mechanism, independent of any simulator.

:mod:`.discretize` reproduces the discrete state updates a simulator applies (modcc's
``cnexp`` Padé step, ``sparse`` backward Euler, LINEAR solves), :mod:`.derive`
differentiates them and the currents with respect to the model's parameters θ, and
:mod:`.coupling` finds the ion quantities through which sensitivities pass between
mechanisms.
"""
