"""The constant-radius equivalent cell on which the diffusive carriers follow the voltage.

:mod:`.layout` reads Arbor's discretisation (CV areas, axial resistances),
:mod:`.transform` builds the electrically identical cell of one radius, :mod:`.check`
compares it with the original, and :mod:`.cell` keeps the checked result per cell spec.
"""
