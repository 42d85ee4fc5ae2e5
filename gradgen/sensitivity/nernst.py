"""Reversal potentials that follow the concentrations (Arbor's ``nernst`` method).

With ``decor.set_ion("ca", method="nernst/x=ca")`` Arbor recomputes eca = c·log(cao/cai),
c = R·T/(z·F), from the concentrations after every step, so a Ca channel's current depends
on θ through eca as soon as a mechanism integrates ica into cai. The path θ → ica → cai →
eca → I is followed here: a mechanism that reads e<ion> while another input writes <ion>i
reads <ion>i as well, and its gradient version takes

    d e<ion>/dθ_k = flag · (−c / <ion>i) · d<ion>i/dθ_k,

with d<ion>i/dθ_k completed as for any coupled concentration
(:mod:`gradgen.sensitivity.coupling`). ``flag`` (:func:`gradgen.protocol.nernst_flag`) is a
RANGE parameter, 0 by default (a fixed reversal potential), which the runtime paints 1 where
the cell's ion uses the nernst method. R, F and the temperature offset are those of Arbor's
own ``nernst.mod``.
"""
from __future__ import annotations

import sympy

from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.protocol import nernst_flag

#: Arbor's nernst.mod: gas constant, Faraday's constant, 0 °C in K
GAS_CONSTANT, FARADAY, ZERO_CELSIUS = 8.31446261815324, 96485.3321233100184, 273.15
#: valences of Arbor's default ions (a USEION VALENCE overrides)
ARBOR_VALENCES = {"ca": 2, "na": 1, "k": 1}


def valence(low: LoweredMechanism, ion: str) -> int | None:
    declared = next((i.valence for i in low.mechanism.ions if i.name == ion and i.valence), None)
    return declared or ARBOR_VALENCES.get(ion)


def followed_reversals(low: LoweredMechanism, written: set[str]) -> dict[str, str]:
    """Reversal potentials ``low`` reads whose internal concentration an input writes:
    reversal variable -> concentration (``{"eca": "cai"}``); ions of unknown valence are left out."""
    out = {}
    for var, ion in low.ion_reads.items():
        if var == f"e{ion}" and f"{ion}i" in written and f"{ion}i" not in low.concentration_writes \
                and valence(low, ion) is not None:
            out[var] = f"{ion}i"
    return out


def reversal_slope(low: LoweredMechanism, reversal: str) -> sympy.Expr:
    """flag · ∂e/∂<ion>i = flag · (−R·T/(z·F)·1000 / <ion>i) in mV/mM, T from celsius.

    An if/else on the flag, not a product: with a fixed reversal potential (flag 0) and
    <ion>i = 0 (a Ca pool whose INITIAL sets cai = 0) the product is 0·∞, NaN."""
    ion = low.ion_reads[reversal]
    z = valence(low, ion)
    coefficient = GAS_CONSTANT * (sympy.Symbol("celsius") + ZERO_CELSIUS) / (z * FARADAY) * 1000
    follows = sympy.Ne(sympy.Symbol(nernst_flag(ion)), 0)
    return sympy.Piecewise((-coefficient / sympy.Symbol(f"{ion}i"), follows), (0, True))


__all__ = ["followed_reversals", "reversal_slope", "valence"]
