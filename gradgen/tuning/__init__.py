"""Fitting a model's parameters to target traces.

:mod:`.config` reads the TOML configuration, :mod:`.params` maps optimiser coordinates to
parameter values (transforms, bounds, ties), :mod:`.problem` is the loss of one cell
against its target, :mod:`.optim` holds the optimisers, :mod:`.plots` the figures and
:mod:`.run` ties them together (``gradgen tune``). A new optimiser goes into
:mod:`.optim` and the method list of :mod:`.config`.
"""
