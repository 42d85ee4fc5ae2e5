"""The simulator-free front end: NMODL text to a lowered mechanism.

``parser`` reads the union of the NEURON and Arbor dialects into the IR (:mod:`.ir`),
:mod:`.lower` executes it symbolically (statement by statement: :mod:`.block_executor`) into
closed forms (:mod:`.lowered`: currents, derivatives, events, initial values) and
:mod:`.printer` prints SymPy expressions back as NMODL. A new NMODL construct goes into the
grammar (``parser/nmodl.lark``), the IR builder (``parser/build.py``) and, if it changes
what a mechanism computes, :mod:`.block_executor` or :mod:`.lower`.
"""
