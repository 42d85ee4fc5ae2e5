"""Checks against finite differences of the original mechanisms.

:mod:`.cells` builds the test and benchmark cells, :mod:`.fd` compares a gradient model
with central finite differences (``gradgen check``), :mod:`.coverage` takes files one by
one through every stage, and :mod:`.demo` is ``gradgen demo``.
"""
