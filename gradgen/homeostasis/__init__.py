"""Homeostatic control: parameters that learn while the simulator runs.

:mod:`.convert` emits the homeostatic mechanisms, :mod:`.run` runs them in Arbor,
:mod:`.stability` checks the learning loop's linearisation, :mod:`.cli` holds the
command-line options and :mod:`.demo` the rate-homeostasis experiment.
"""
