"""Mechanism names modcc cannot compile (ModelDB 168858's ``SUFFIX max``): refused by name
with file:line, and the list checked against modcc itself."""
from __future__ import annotations

import pytest

from gradgen.errors import GradgenError
from gradgen.nmodl.lower import lower
from gradgen.nmodl.parser import parse_text
from gradgen.targets.arbor.build import modcc_accepts
from gradgen.targets.arbor.dialect import MODCC_RESERVED_NAMES
from gradgen.targets.arbor.translate import translate_lowered

LEAK = """NEURON {{
  SUFFIX {name}
  NONSPECIFIC_CURRENT i
}}
PARAMETER {{ g = 0.001 }}
BREAKPOINT {{
  i = g*v
}}
"""


@pytest.mark.parametrize("name", sorted(MODCC_RESERVED_NAMES))
def test_modcc_rejects_each_reserved_name(name):
    assert not modcc_accepts(LEAK.format(name=name))


@pytest.mark.parametrize("name", ["abs", "pow", "floor", "leak"])  # close to the list, accepted
def test_modcc_accepts_names_outside_the_list(name):
    assert modcc_accepts(LEAK.format(name=name))


def test_translate_refuses_a_reserved_name_in_one_line():
    with pytest.raises(GradgenError) as err:
        translate_lowered(lower(parse_text(LEAK.format(name="max"), "max.mod")))
    assert str(err.value).startswith("max.mod:2:10: the mechanism name 'max' is a function or keyword")
    assert "\n" not in str(err.value)
