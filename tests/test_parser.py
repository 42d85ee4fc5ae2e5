"""NMODL parser: fixtures in published styles -> IR, and every user-error path."""
from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.ir import (
    Assign,
    Call,
    DerivativeAssign,
    If,
    Local,
    Mechanism,
    Solve,
    exprelr,
    fabs,
)
from gradgen.nmodl.parser import parse_file, parse_text
from gradgen.nmodl.parser.preprocess import preprocess

DATA = Path(__file__).parent / "data" / "parser"
OK = DATA / "ok"
ERRORS = DATA / "errors"

S = sympy.Symbol
v, x, y = S("v"), S("x"), S("y")


def parse_body(code: str) -> list:
    """The BREAKPOINT body of a minimal mechanism around ``code``."""
    mech = parse_text(f"NEURON {{ SUFFIX t }}\nBREAKPOINT {{\n{code}\n}}\n", "t.mod")
    return mech.breakpoint.body


def parse_expr(text: str) -> sympy.Basic:
    (stmt,) = parse_body(f"r = {text}")
    return stmt.expr


def error_of(text: str) -> GradgenError:
    with pytest.raises(GradgenError) as info:
        parse_text(text, "e.mod")
    return info.value


# ---------------------------------------------------------------- HH in Arbor's style


@pytest.fixture(scope="module")
def hh() -> Mechanism:
    return parse_file(OK / "hh_arbor.mod")


def test_hh_neuron_block(hh: Mechanism) -> None:
    path = str(OK / "hh_arbor.mod")
    assert (hh.name, hh.kind, hh.title) == ("hh", "density", None)
    assert hh.pos == SourcePos(path, 5, 12)
    assert hh.source == OK / "hh_arbor.mod"
    assert hh.text == (OK / "hh_arbor.mod").read_text()
    assert [(i.name, i.read, i.write, i.valence) for i in hh.ions] == [
        ("na", ["ena"], ["ina"], None),
        ("k", ["ek"], ["ik"], None),
    ]
    assert hh.ions[1].pos == SourcePos(path, 7, 5)
    assert hh.nonspecific_currents == ["il"]
    assert hh.range_names == ["gnabar", "gkbar", "gl", "el", "q10"]
    assert hh.global_names == ["minf", "hinf", "ninf", "mtau", "htau", "ntau"]
    assert hh.units == {"mV": "millivolt", "S": "siemens"}


def test_hh_declarations(hh: Mechanism) -> None:
    params = {p.name: (p.value, p.unit) for p in hh.parameters}
    assert params == {
        "gnabar": (0.12, "S/cm2"),
        "gkbar": (0.036, "S/cm2"),
        "gl": (0.0003, "S/cm2"),
        "el": (-54.3, "mV"),
        "celsius": (None, "degC"),
    }
    assert hh.parameter("el").pos == SourcePos(str(OK / "hh_arbor.mod"), 22, 5)
    assert [s.name for s in hh.states] == ["m", "h", "n"]
    assert [(a.name, a.unit) for a in hh.assigned] == [
        ("q10", None), ("minf", None), ("hinf", None), ("ninf", None),
        ("mtau", "ms"), ("htau", "ms"), ("ntau", "ms"),
    ]


def test_hh_blocks(hh: Mechanism) -> None:
    bp = hh.breakpoint.body
    assert bp[0] == Solve("states", "cnexp", SourcePos(str(OK / "hh_arbor.mod"), 35, 5))
    assert isinstance(bp[1], Local) and bp[1].names == ["gk", "gna", "n2"]
    assert bp[-1] == Assign("il", S("gl") * (v - S("el")), bp[-1].pos)
    assert bp[-1].pos.line == 43

    q10, call = hh.initial.body[:2]
    assert q10.expr == 3 ** ((S("celsius") - sympy.Float(6.3)) * sympy.Float(0.1))
    assert call == Call("rates", [v], call.pos) and call.pos.line == 48

    states = hh.derivatives["states"]
    assert states.pos.line == 54 and states.name == "states"
    assert [type(s) for s in states.body] == [Call] + [DerivativeAssign] * 3
    assert states.body[1].state == "m"
    assert states.body[1].expr == (S("minf") - S("m")) / S("mtau")

    rates = hh.procedures["rates"]
    assert rates.args == ["v"]
    targets = [s.target for s in rates.body if isinstance(s, Assign)]
    assert {"minf", "hinf", "ninf", "mtau", "htau", "ntau"} <= set(targets)
    alpha = rates.body[1]
    assert alpha.expr == exprelr(sympy.Float(-0.1) * v - 4)
    assert isinstance(alpha.expr, exprelr)
    assert alpha.pos == SourcePos(str(OK / "hh_arbor.mod"), 65, 5)


def test_passive_leak() -> None:
    pas = parse_file(OK / "pas.mod")
    assert (pas.name, pas.kind) == ("pas", "density")
    assert [(p.name, p.value, p.unit) for p in pas.parameters] == [
        ("g", 0.001, "S/cm2"), ("e", -70.0, "mV"),
    ]
    assert pas.breakpoint.body == [Assign("i", S("g") * (v - S("e")), pas.breakpoint.body[0].pos)]
    assert pas.initial is None and not pas.states and not pas.derivatives


def test_point_process_and_limits() -> None:
    mech = parse_file(OK / "leak_point.mod")
    assert (mech.name, mech.kind) == ("shunt", "point")
    assert mech.parameter("g").limits == (0.0, 1e9)
    assert [(a.name, a.unit) for a in mech.assigned] == [("v", "mV"), ("i", "nA")]
    assert mech.units["uS"] == "microsiemens"


# ---------------------------------------------------------------- published styles


def test_neuron_style_file() -> None:
    path = OK / "na_neuron_style.mod"
    mech = parse_file(path)
    assert mech.title == "Fast sodium channel, NEURON style (imitation of a ModelDB file)"
    assert mech.range_names == ["gbar", "ina", "minf", "hinf"]
    assert mech.parameter("vhalf").limits == (-100.0, 100.0)
    assert mech.parameter("q10").unit is None and mech.parameter("dt").value is None
    assert [s.name for s in mech.states] == ["m", "h"]  # "FROM 0 TO 1" is accepted
    assert mech.breakpoint.body[0] == Solve("states", "derivimplicit", SourcePos(str(path), 52, 2))

    alpm = mech.functions["alpm"]
    assert alpm.args == ["v"] and alpm.pos == SourcePos(str(path), 83, 1)
    assert alpm.body[0].expr == sympy.Float(0.182) * sympy.Function("vtrap")(-(v + 35), 9)

    vtrap = mech.functions["vtrap"].body[0]
    assert isinstance(vtrap, If) and vtrap.pos == SourcePos(str(path), 92, 2)
    assert vtrap.cond == sympy.StrictLessThan(fabs(x / y), sympy.Float(1e-6))
    assert vtrap.then[0].target == "vtrap" and vtrap.orelse[0].expr == x / (sympy.exp(x / y) - 1)

    trates = mech.procedures["trates"].body
    assert trates[1].expr == S("q10") ** ((S("celsius") - S("temp")) / 10)  # (10 (degC)) is 10
    chain = trates[10]
    assert isinstance(chain, If) and chain.pos.line == 73
    (elif_,) = chain.orelse
    assert isinstance(elif_, If) and elif_.pos == SourcePos(str(path), 75, 8)
    assert elif_.cond == sympy.And(
        sympy.StrictGreaterThan(S("htau"), sympy.Float(150.0)),
        sympy.StrictGreaterThan(v, -20),
    )
    assert elif_.orelse == [Assign("htau", S("htau"), SourcePos(str(path), 78, 3))]


def test_constants_valence_and_procedure_solve() -> None:
    mech = parse_file(OK / "cal_constants.mod")
    (ca,) = mech.ions
    assert (ca.read, ca.write, ca.valence) == (["cai", "eca"], ["ica"], 2)
    assert [(c.name, c.value, c.unit) for c in mech.constants] == [
        ("KTOMV", 0.0853, "mV/degC"), ("ki", 0.001, "mM"), ("ZERO", 0.0, None),
    ]
    assert mech.parameter("tfa").value == 1.0 and mech.parameter("shift").value == -25.0
    assert mech.parameter("gcabar").value == 3e-3
    assert mech.breakpoint.body[0].method is None
    assert mech.functions["h2"].args == ["cai"]
    cond = mech.functions["alpha"].body[2].cond
    assert cond == sympy.Or(
        sympy.Eq(x, S("ZERO")), sympy.Not(sympy.StrictGreaterThan(fabs(x), sympy.Float(1e-6)), evaluate=False),
    )


def test_compact_style() -> None:
    mech = parse_file(OK / "kdr_compact.mod")
    assert mech.global_names == ["ninf", "ntau"]
    assert [(p.name, p.value, p.unit, p.limits) for p in mech.parameters] == [
        ("gbar", 0.036, "S/cm2", (0.0, 1.0)), ("vhalf", -40.0, "mV", None),
        ("slope", -10.0, "mV", None), ("tmin", 0.5, "ms", None),
    ]
    rates = mech.procedures["rates"].body
    assert rates[2].expr == sympy.exp(-(((v + 40) / 30) ** 2))
    assert isinstance(rates[4], If) and rates[4].pos == SourcePos(str(OK / "kdr_compact.mod"), 10, 15)
    assert mech.breakpoint.body[1].expr == S("gbar") * S("n") ** 4 * (v - S("ek"))


@pytest.mark.parametrize("path", sorted(OK.glob("*.mod")), ids=lambda p: p.name)
def test_every_fixture_parses_with_positions_inside_the_file(path: Path) -> None:
    mech = parse_file(path)
    lines = path.read_text().splitlines()
    blocks = [b for b in (mech.initial, mech.breakpoint) if b]
    blocks += [*mech.functions.values(), *mech.procedures.values(), *mech.derivatives.values()]
    for block in blocks:
        assert lines[block.pos.line - 1][block.pos.col - 1 :].startswith(
            ("INITIAL", "BREAKPOINT", "FUNCTION", "PROCEDURE", "DERIVATIVE")
        )
        for stmt in block.body:
            word = {If: "if", Local: "LOCAL", Solve: "SOLVE"}.get(type(stmt))
            name = word or getattr(stmt, "target", None) or getattr(stmt, "state", None) or stmt.name
            assert lines[stmt.pos.line - 1][stmt.pos.col - 1 :].startswith(name)
    for var in [*mech.parameters, *mech.assigned, *mech.states, *mech.constants]:
        assert lines[var.pos.line - 1][var.pos.col - 1 :].startswith(var.name)


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-x^2", -(x**2)),
        ("-2^2", sympy.Integer(-4)),
        ("2^3^2", sympy.Integer(512)),  # right-associative: 2^(3^2)
        ("x^-1", 1 / x),
        ("x - y - 1", x - y - 1),
        ("x/y/2", x / (2 * y)),
        ("+x * -y", -x * y),
        ("(x + y)*2", 2 * (x + y)),
        ("1.5E+2 + .5 + 1e-3 + 2.", sympy.Float(150.0 + 0.5 + 0.001 + 2.0)),
        ("3 (mV) * x", 3 * x),
        ("fabs(x) + pow(x, y)", fabs(x) + x**y),
        ("min(x, 1) + max(x, y)", sympy.Min(x, 1) + sympy.Max(x, y)),
        ("log(x) + log10(x) + sqrt(x)", sympy.log(x) + sympy.log(x, 10) + sympy.sqrt(x)),
        ("sin(x) + cos(x) + tanh(x) + exp(x)", sympy.sin(x) + sympy.cos(x) + sympy.tanh(x) + sympy.exp(x)),
        ("exprelr(x)", exprelr(x)),
    ],
)
def test_expressions(text: str, expected: sympy.Basic) -> None:
    assert parse_expr(text) == expected


def test_number_types() -> None:
    assert type(parse_expr("7")) is sympy.Integer
    assert parse_expr("1e3") == sympy.Float(1000.0) and isinstance(parse_expr("1e3"), sympy.Float)
    assert isinstance(parse_expr("2.0"), sympy.Float)


def test_conditions_stay_unevaluated() -> None:
    (stmt,) = parse_body("if (1 < 2) { x = 1 } else { x = 2 }")
    assert isinstance(stmt.cond, sympy.StrictLessThan)
    assert stmt.cond.args == (1, 2)
    (stmt,) = parse_body("if (x) { y = 1 }")  # a number as a condition means "not zero"
    assert stmt.cond == sympy.Ne(x, 0)
    (stmt,) = parse_body("if (!(x >= 1) && y <= 2 || x != y) { }")
    assert stmt.cond == sympy.Or(
        sympy.And(sympy.Not(sympy.GreaterThan(x, 1), evaluate=False), sympy.LessThan(y, 2)),
        sympy.Ne(x, y),
    )
    assert stmt.then == [] and stmt.orelse == []


def test_local_anywhere_and_user_function_beats_builtin() -> None:
    mech = parse_text(
        "NEURON { SUFFIX t }\n"
        "FUNCTION exprelr(x) { exprelr = x }\n"
        "BREAKPOINT { a = 1 LOCAL b b = exprelr(a) }\n",
        "t.mod",
    )
    body = mech.breakpoint.body
    assert [type(s) for s in body] == [Assign, Local, Assign]
    assert body[2].expr == sympy.Function("exprelr")(S("a"))


# ---------------------------------------------------------------- preprocessing


def test_preprocess_keeps_positions() -> None:
    text = "TITLE  a title : with colon\nCOMMENT\n x\nENDCOMMENT a = 1 : c\n? q\nb = 2\n"
    out = preprocess(text)
    assert out.title == "a title : with colon"
    assert len(out.text) == len(text)
    assert [line.rstrip() for line in out.text.splitlines()] == [
        "", "", "", "           a = 1", "", "b = 2"
    ]


def test_comments_do_not_move_positions() -> None:
    mech = parse_text(
        "COMMENT\nline 2\nENDCOMMENT NEURON { SUFFIX t } : trailing\n"
        "BREAKPOINT { ? old style\n  x = 1 }\n",
        "c.mod",
    )
    assert mech.pos == SourcePos("c.mod", 3, 28)
    assert mech.breakpoint.body[0].pos == SourcePos("c.mod", 5, 3)


# ---------------------------------------------------------------- errors


def test_syntax_error_position_from_file() -> None:
    path = ERRORS / "syntax_error.mod"
    with pytest.raises(GradgenError) as info:
        parse_file(path)
    err = info.value
    assert err.pos == SourcePos(str(path), 8, 19)
    assert str(err).startswith(f"{path}:8:19: unexpected ')', expected ")
    assert "'}'" in err.message and err.hint


def test_verbatim_error_position_from_file() -> None:
    path = ERRORS / "verbatim.mod"
    with pytest.raises(GradgenError) as info:
        parse_file(path)
    assert str(info.value).startswith(f"{path}:7:5: VERBATIM is not supported yet (hint: C code")


def test_unknown_function_from_file() -> None:
    path = ERRORS / "unknown_function.mod"
    with pytest.raises(GradgenError) as info:
        parse_file(path)
    assert str(info.value).startswith(f"{path}:5:15: unknown function boltzmann")


def test_operators_are_summarised_in_syntax_errors() -> None:
    err = error_of(HEAD + "BREAKPOINT { a = b $ 2 }")
    assert "an operator" in err.message and "'*'" not in err.message


def test_missing_file() -> None:
    with pytest.raises(GradgenError, match="cannot read /no/such/dir/x.mod"):
        parse_file("/no/such/dir/x.mod")


HEAD = "NEURON { SUFFIX t }\n"


@pytest.mark.parametrize(
    "code, construct, col",
    [
        ("NONLINEAR nl { ~ x = 1 }", "NONLINEAR", 1),
        ("FUNCTION_TABLE tau(v (mV)) (ms)", "FUNCTION_TABLE", 1),
        ("BREAKPOINT { WATCH (v > 0) 1 }", "WATCH", 14),
        ("BREAKPOINT { MUTEXLOCK }", "MUTEXLOCK", 14),
        ("BREAKPOINT { WHILE (x < 1) { x = x + 1 } }", "WHILE", 14),
        ("BREAKPOINT { LONGITUDINAL_DIFFUSION D {cai} }", "LONGITUDINAL_DIFFUSION", 14),
        ("NEURON { POINTER p }", "POINTER", 10),
        ("NEURON { BBCOREPOINTER p }", "BBCOREPOINTER", 10),
    ],
)
def test_unsupported_keywords(code: str, construct: str, col: int) -> None:
    err = error_of(HEAD + code)
    assert err.message == f"{construct} is not supported yet"
    assert err.pos == SourcePos("e.mod", 2, col) and err.hint


@pytest.mark.parametrize(
    "code, what, col",
    [
        ('FUNCTION f() { f = "x" }', "strings", 20),  # arrays and FROM loops: test_arrays.py
    ],
)
def test_unsupported_symbols(code: str, what: str, col: int) -> None:
    err = error_of(HEAD + code)
    assert (err.message, err.pos) == (f"{what} are not supported yet", SourcePos("e.mod", 2, col))


@pytest.mark.parametrize(
    "code, message, line, col",
    [
        ("BREAKPOINT { a = b + }", "unexpected '}', expected ", 2, 22),
        ("BREAKPOINT { a = b $ 2 }", "unexpected '$', expected ", 2, 20),
        ("BREAKPOINT { a == 1 }", "unexpected '=', expected ", 2, 17),
        ("BREAKPOINT {\n  a = b\n", "unexpected end of file, expected ", 3, 8),
        ("PARAMETER { a = b }", "unexpected name 'b', expected '+', '-', a number", 2, 17),
        ("SOLVE x", "unexpected 'SOLVE', expected ", 2, 1),  # a LOCAL there is valid NEURON
        ("BREAKPOINT { if (a) { b = 1 } else c = 2 }", "unexpected name 'c', expected 'if', '{'", 2, 36),
        ("NEURON { USEION ca READ cai VALENCE 2.5 }", "VALENCE must be an integer, got 2.5", 2, 29),
        ("BREAKPOINT { a = foo(1) }", "unknown function foo", 2, 18),
        ("BREAKPOINT { a = exp(1, 2) }", "exp takes 1 argument, got 2", 2, 18),
        ("FUNCTION f(a, b) { f = a } BREAKPOINT { x = f(1) }", "f takes 2 arguments, got 1", 2, 45),
        ("PROCEDURE p() { } BREAKPOINT { x = p() }", "PROCEDURE p has no value", 2, 36),
        ("BREAKPOINT { rates(v) }", "unknown PROCEDURE rates", 2, 14),
        ("BREAKPOINT { a = (b < 1) + 1 }", "a comparison or logical expression is used as a number", 2, 18),
        ("STATE { m } BREAKPOINT { m' = 1 }", "m' = ... is only allowed in a DERIVATIVE block", 2, 26),
        ("DERIVATIVE d { q' = 1 }", "q' = ...: q is not a STATE", 2, 16),
        ("BREAKPOINT { SOLVE states METHOD cnexp }", "SOLVE states: no DERIVATIVE, KINETIC, LINEAR or PROCEDURE states", 2, 14),
        ("UNITS { FARADAY = (fardy) (coulomb) }", "unknown physical constant (fardy) in UNITS", 2, 9),
        ("BREAKPOINT { CONSERVE a + b = 1 }", "CONSERVE statements are only allowed in a KINETIC block", 2, 14),
        ("BREAKPOINT { COMPARTMENT v {cai} }", "COMPARTMENT statements are only allowed in a KINETIC block", 2, 14),
        ("STATE { c o } BREAKPOINT { ~ c <-> o (1, 2) }", "~ reactions are only allowed in a KINETIC block", 2, 28),
        ('INCLUDE "no_such.inc"', 'cannot read INCLUDE "no_such.inc"', 2, 1),
        ("KINETIC k { ~ 1.5 a <-> b (1, 1) }", "stoichiometric coefficient 1.5 is not a whole number", 2, 15),
        ("BREAKPOINT { }\nBREAKPOINT { }", "BREAKPOINT is defined twice", 3, 1),
        ("FUNCTION f() { }\nPROCEDURE f() { }", "f is defined twice", 3, 1),
        ("NEURON { POINT_PROCESS u }", "a second SUFFIX or POINT_PROCESS (u)", 2, 24),
        ("BREAKPOINT { x = 1 }\nCOMMENT never closed", "COMMENT without ENDCOMMENT", 3, 1),
    ],
)
def test_user_errors(code: str, message: str, line: int, col: int) -> None:
    err = error_of(HEAD + code)
    assert err.message.startswith(message)
    assert err.pos == SourcePos("e.mod", line, col)
    assert str(err).startswith(f"e.mod:{line}:{col}: {message}")


def test_mechanism_needs_a_name() -> None:
    err = error_of("PARAMETER { g = 1 }\n")
    assert err.message == "the mechanism has no SUFFIX or POINT_PROCESS" and "SUFFIX" in err.hint


# ---------------------------------------------------------------- NEURON + Arbor dialect union


def test_dialect_union_into_the_ir(tmp_path) -> None:
    (tmp_path / "rates.inc").write_text("FUNCTION r(x) {\n  r = 2*x\n}\n")
    path = tmp_path / "u.mod"
    path.write_text(
        'NEURON { SUFFIX u USEION k READ ek WRITE ik VALENCE zk }\n'
        "UNITSOFF\nDEFINE N 3\nINDEPENDENT { t FROM 0 TO 1 WITH 1 (ms) }\n"
        "UNITS { F = (faraday) (coulomb) }\n"
        "STATE { c o x (mM) <1e-4> }\n"
        "KINETIC kin {\n  ~ c <-> 2 o (r(v), N)\n  ~ x << (1)\n"
        "  CONSERVE c + 2 o = 1\n  COMPARTMENT 2 {c o}\n}\n"
        "PROCEDURE p(v) { TABLE a DEPEND celsius FROM -100 TO 100 WITH 200\n a = 1 }\n"
        'INCLUDE "rates.inc"\n'
        "BREAKPOINT { SOLVE kin METHOD sparse ik = o*(v - ek) }\n"
        "INITIAL { SOLVE kin STEADYSTATE sparse }\n"
        "NET_RECEIVE (w) { c = c + w }\nUNITSON\n"
    )
    mech = parse_file(path)
    assert mech.ions[0].valence_name == "zk"
    assert [(c.name, c.value) for c in mech.constants] == [("N", 3.0), ("F", 96485.33212331001)]
    react, flux, conserve, compartment = mech.kinetics["kin"].body
    assert (react.left, react.right) == ([(1, "c")], [(2, "o")])
    assert react.forward == sympy.Function("r")(v) and react.pos == SourcePos(str(path), 8, 3)
    assert (flux.state, conserve.terms, compartment.states) == ("x", [(1, "c"), (2, "o")], ["c", "o"])
    assert mech.procedures["p"].body == [Assign("a", 1, SourcePos(str(path), 14, 2))]  # TABLE dropped
    assert mech.functions["r"].pos == SourcePos(str(tmp_path / "rates.inc"), 1, 1)
    assert mech.initial.body[0].steady_state and mech.initial.body[0].method == "sparse"
    assert mech.net_receive.args == ["w"]


def test_junction_process_and_errors_inside_an_included_file(tmp_path) -> None:
    mech = parse_text("NEURON { JUNCTION_PROCESS gj NONSPECIFIC_CURRENT i }\n", "j.mod")
    assert (mech.name, mech.kind) == ("gj", "junction")
    (tmp_path / "bad.inc").write_text("\nFUNCTION f() { f = 1 + }\n")
    (tmp_path / "m.mod").write_text('NEURON { SUFFIX m }\nINCLUDE "bad.inc"\n')
    with pytest.raises(GradgenError) as info:
        parse_file(tmp_path / "m.mod")
    assert info.value.pos == SourcePos(str(tmp_path / "bad.inc"), 2, 24)


@pytest.mark.parametrize("unit, value", [("(coulomb)", 96485.33212331001), ("(kilocoulombs)", 96.48533212331002),
                                         ("(10000 coulomb)", 9.648533212331001), ("", 96485.33212331001)])
def test_physical_constant_in_the_unit_named(unit, value):
    """NEURON expresses ``(faraday)`` in the unit after it: ``(kilocoulombs)`` gives 96.485
    (ModelDB Ca channels write it so; taking 96485 made exp(F·v/RT) overflow)."""
    mech = parse_text(f"NEURON {{ SUFFIX x }}\nUNITS {{ F = (faraday) {unit} }}\nBREAKPOINT {{ }}\n")
    assert mech.constants[0].value == pytest.approx(value, rel=1e-15)


def test_physical_constant_in_an_unknown_unit_is_one_line(tmp_path):
    with pytest.raises(GradgenError, match=r"f.mod:2:9: \(faraday\) expressed in \(megacoulomb\)"):
        parse_text("NEURON { SUFFIX x }\nUNITS { F = (faraday) (megacoulomb) }\nBREAKPOINT { }\n", "f.mod")


def test_old_mac_line_ends_top_level_local_and_pi():
    """Three styles of published files (ModelDB): CR-only line ends, a LOCAL outside any
    block (a variable of the mechanism, read as ASSIGNED), and ``(pi)`` in UNITS."""
    text = ("NEURON { SUFFIX x NONSPECIFIC_CURRENT i }\rUNITS { PI = (pi) (1) }\rLOCAL tmp\r"
            "PARAMETER { g = 1 : a comment\r}\rBREAKPOINT { i = g*PI*(v + 65) }\r")
    mech = parse_text(text, "mac.mod")
    assert mech.constants[0].value == pytest.approx(3.141592653589793, rel=1e-16)
    assert [a.name for a in mech.assigned] == ["tmp"]
    assert [p.name for p in mech.parameters] == ["g"]
    assert mech.breakpoint.pos.line == 6  # CR ends lines
