"""pycat: Arbor mechanisms written in Python (numpy) or JAX, through Arbor's mechanism ABI.

    import pycat
    leak = pycat.Mechanism("npleak", parameters={"g": 1e-3, "e": -70.0},
                           compute_currents=lambda m: m.add_current(m.p.g * (m.v - m.p.e), g=m.p.g))
    cat = pycat.catalogue([leak], base=arbor.default_catalogue())

JAX channels (``pycat.jax``) and their gradient mechanisms (``pycat.grad``) build on this.
See docs/pycat.md.
"""
from ._runtime import catalogue, last_error
from .errors import MechanismCallbackError, PycatError
from .mechanism import Field, Ion, Mechanism
from .views import Events, IonView, MechView

__all__ = [
    "catalogue", "last_error", "Mechanism", "Ion", "Field", "MechView", "IonView", "Events",
    "PycatError", "MechanismCallbackError",
]
