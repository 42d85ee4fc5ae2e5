"""Ready-made JAX channels (the formulas of Arbor's built-in mechanisms)."""
from __future__ import annotations

import jax.numpy as jnp

from .channel import Channel, exprelr
from .mechanism import Ion


def _rates(v):
    """Hodgkin–Huxley opening/closing rates [1/ms] as in Arbor's default hh.mod."""
    return {
        "m": (exprelr(-0.1 * v - 4.0), 4.0 * jnp.exp(-((v + 65.0) * (1.0 / 18.0)))),
        "h": (0.07 * jnp.exp(-0.05 * v - 3.25), 1.0 / (jnp.exp(-0.1 * v - 3.5) + 1.0)),
        "n": (0.1 * exprelr(-0.1 * v - 5.5), 0.125 * jnp.exp(-0.0125 * v - 0.8125)),
    }


def _q10(c):
    return jnp.exp(1.0986122886681098 * (0.1 * c["celsius"] - 0.63))


def hh(name: str = "jaxhh") -> Channel:
    """Hodgkin–Huxley squid axon, numerically the same as Arbor's built-in ``hh``."""

    def current(v, s, p, c):
        n2 = s["n"] * s["n"]
        gk = p["gkbar"] * n2 * n2
        gna = p["gnabar"] * s["m"] * s["m"] * s["m"] * s["h"]
        return {"na": gna * (v - c["ena"]), "k": gk * (v - c["ek"]), "": p["gl"] * (v - p["el"])}

    def init(v, p, c):
        return {x: a / (a + b) for x, (a, b) in _rates(v).items()}

    def derivative(v, s, p, c):
        q10 = _q10(c)
        return {x: (a - s[x] * (a + b)) * q10 for x, (a, b) in _rates(v).items()}

    return Channel(
        name=name,
        parameters={"gnabar": 0.12, "gkbar": 0.036, "gl": 0.0003, "el": -54.3},
        states=("m", "h", "n"),
        current=current,
        init=init,
        derivative=derivative,
        ions=(Ion("na", read_rev=True), Ion("k", read_rev=True)),
        units={"gnabar": "S/cm2", "gkbar": "S/cm2", "gl": "S/cm2", "el": "mV"},
    )


def passive(name: str = "jaxpas") -> Channel:
    """A leak with a stateless update, the smallest JAX channel."""
    return Channel(
        name=name,
        parameters={"g": 0.001, "e": -70.0},
        states=(),
        current=lambda v, s, p, c: p["g"] * (v - p["e"]),
        init=lambda v, p, c: {},
        update=lambda v, s, p, c, dt: {},
        units={"g": "S/cm2", "e": "mV"},
    )
