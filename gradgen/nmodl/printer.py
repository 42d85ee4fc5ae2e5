"""Print SymPy expressions as NMODL (the subset modcc and NEURON both accept).

NMODL has no conditional expression, so ``Piecewise`` is hoisted out of expressions into
temporaries assigned by if/else statements (:func:`lower_piecewise`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy
from sympy.core.relational import Relational
from sympy.logic.boolalg import ITE, BooleanFunction
from sympy.printing.str import StrPrinter

from gradgen.nmodl.ir import ROUNDING_SHIFT, dexprelr, floor_form, nfloor
from gradgen.protocol import DEXPRELR_FUNCTION

_LOGICAL = (Relational, BooleanFunction)


class NmodlPrinter(StrPrinter):
    """StrPrinter with NMODL's operators, numbers in full double precision."""

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return repr(float(expr))

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return str(int(expr))

    def _print_Pow(self, expr: sympy.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == sympy.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        if exp == -1:
            return f"1/{self.parenthesize(base, 100)}"
        if exp.is_Integer and 2 <= int(exp) <= 4:
            # Parenthesised: StrPrinter prints a/x**2 as "a/" + this.
            b = self.parenthesize(base, 100)
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and -4 <= int(exp) <= -2:
            b = self.parenthesize(base, 100)
            return "1/(" + "*".join([b] * -int(exp)) + ")"
        if base == sympy.E:
            return f"exp({self._print(exp)})"
        return f"{self.parenthesize(base, 100)}^{self.parenthesize(exp, 100)}"

    def _print_Exp1(self, expr) -> str:
        return "exp(1)"

    def _print_exp(self, expr) -> str:
        return f"exp({self._print(expr.args[0])})"

    def _print_fabs(self, expr) -> str:
        return f"fabs({self._print(expr.args[0])})"

    def _print_Min(self, expr) -> str:
        return self._fold("min", expr.args)

    def _print_Max(self, expr) -> str:
        return self._fold("max", expr.args)

    def _fold(self, name: str, args) -> str:
        text = self._print(args[0])
        for arg in args[1:]:
            text = f"{name}({text}, {self._print(arg)})"
        return text

    def _print_exprelr(self, expr) -> str:
        return f"exprelr({self._print(expr.args[0])})"

    def _print_round_even(self, expr) -> str:
        # left to right, as modcc prints it: (x + S) - S, which the C++ compiler keeps
        return f"({self._print(expr.args[0])} + {ROUNDING_SHIFT}.0 - {ROUNDING_SHIFT}.0)"

    def _print_dexprelr(self, expr) -> str:
        return f"{DEXPRELR_FUNCTION}({self._print(expr.args[0])})"

    def _truth(self, expr) -> str:
        """An operand of a logical operator; a bare name is a stored truth value (1 or 0)."""
        text = self._print(expr)
        return f"({text} != 0)" if isinstance(expr, sympy.Symbol) else f"({text})"

    def _print_And(self, expr) -> str:
        return " && ".join(self._truth(a) for a in expr.args)

    def _print_Or(self, expr) -> str:
        return " || ".join(self._truth(a) for a in expr.args)

    def _print_Not(self, expr) -> str:
        return self._negated(expr.args[0])

    def _negated(self, expr) -> str:
        """not ``expr`` without '!', which modcc does not accept: relations flip, De Morgan."""
        if isinstance(expr, sympy.Symbol):
            return f"({self._print(expr)} == 0)"
        if isinstance(expr, Relational):
            return f"({self._print(expr.negated)})"
        if isinstance(expr, sympy.Not):
            return self._truth(expr.args[0])
        if isinstance(expr, (sympy.And, sympy.Or)):
            joint = " || " if isinstance(expr, sympy.And) else " && "
            return "(" + joint.join(self._negated(a) for a in expr.args) + ")"
        if isinstance(expr, ITE):
            return self._negated(_either(*expr.args))
        raise ValueError(f"cannot negate {expr}")  # pragma: no cover - no other truth values

    def _print_ITE(self, expr) -> str:
        # SymPy's if-then-else of truth values (from nested Piecewise conditions).
        return self._print(_either(*expr.args))

    def _print_Relational(self, expr) -> str:
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_BooleanTrue(self, expr) -> str:
        return "1 == 1"

    def _print_BooleanFalse(self, expr) -> str:
        return "1 == 0"

    def _print_Piecewise(self, expr) -> str:  # pragma: no cover - hoisted before printing
        raise ValueError("Piecewise must be hoisted with lower_piecewise before printing")


def _either(a: sympy.Basic, b: sympy.Basic, c: sympy.Basic) -> sympy.Basic:
    """``ITE(a, b, c)`` as (a ∧ b) ∨ (¬a ∧ c), with constant branches folded by SymPy: a literal
    ``1 == 0`` inside a condition is a scalar that modcc's SIMD printer cannot combine with a
    mask (``logical_and(mask, 0.)``, 168858 peak.mod)."""
    return sympy.Or(sympy.And(a, b), sympy.And(sympy.Not(a), c))


_PRINTER = NmodlPrinter({"full_prec": True})


def nmodl(expr: sympy.Basic) -> str:
    """One expression as NMODL text."""
    return _PRINTER.doprint(expr)


@dataclass
class Line:
    """A rendered statement: assignment, or if/else over nested lines."""

    target: str = ""
    expr: str = ""
    cond: str = ""
    then: list["Line"] = field(default_factory=list)
    orelse: list["Line"] = field(default_factory=list)

    @property
    def is_if(self) -> bool:
        return bool(self.cond)


def lower_piecewise(target: str, expr: sympy.Expr, new_local) -> tuple[list[Line], list[str]]:
    """Render ``target = expr``, hoisting each Piecewise into an if/else on a temporary.

    ``new_local()`` returns a fresh local name. Returns the lines and the locals created.
    """
    lines: list[Line] = []
    created: list[str] = []
    expr = step_functions_as_piecewise(expr)

    def hoist(e: sympy.Basic) -> sympy.Basic:
        if not e.args:
            return e
        e = e.func(*[hoist(a) for a in e.args]) if not isinstance(e, sympy.Piecewise) else e
        if not isinstance(e, sympy.Piecewise):
            return e
        name = new_local()
        created.append(name)
        line: Line | None = None
        branches = [(hoist(val), hoist(cond)) for val, cond in e.args]
        root: Line | None = None
        for value, cond in branches:
            if cond == sympy.true:
                body = [Line(name, nmodl(value))]
                if line is None:
                    lines.append(body[0])
                else:
                    line.orelse = body
                break
            nxt = Line(cond=_condition(cond), then=[Line(name, nmodl(value))])
            if line is None:
                root = nxt
            else:
                line.orelse = [nxt]
            line = nxt
        if root is not None:
            lines.append(root)
        return sympy.Symbol(name)

    final = hoist(expr)
    if isinstance(final, _LOGICAL):
        # A truth value (e.g. a condition CSE pulled out): NMODL has none, so store 1 or 0.
        lines.append(Line(cond=nmodl(final), then=[Line(target, "1")], orelse=[Line(target, "0")]))
    else:
        lines.append(Line(target, nmodl(final)))
    return lines, created


def step_functions_as_piecewise(expr: sympy.Basic) -> sympy.Basic:
    """Heaviside and sign (derivatives of max, min and fabs), which NMODL lacks, as if/else;
    floor as :func:`gradgen.nmodl.ir.floor_form` (modcc lacks it).

    At a tie (x = 0) the derivative is taken from one side; the tie has measure zero.
    """
    expr = expr.replace(nfloor, floor_form)  # modcc has no floor: its if/else is hoisted too
    expr = expr.replace(sympy.Heaviside, lambda x, *_: sympy.Piecewise((1, x > 0), (0, True)))
    return expr.replace(sympy.sign, lambda x: sympy.Piecewise((1, x > 0), (-1, x < 0), (0, True)))


def _condition(cond: sympy.Basic) -> str:
    """A condition as NMODL; a bare name is a stored truth value (1 or 0)."""
    return f"{nmodl(cond)} != 0" if isinstance(cond, sympy.Symbol) else nmodl(cond)


# modcc rejects a hyphen anywhere in a unit ("(-mV)", "(mM-cm2/ms-mA)") and a "*"
# ("(mM*cm2/ms/mA)"; a product is written with a space)
_MODCC_UNIT = re.compile(r"[A-Za-z/1][A-Za-z0-9/_. ]*")


def modcc_unit(unit: str | None) -> str | None:
    """A unit to print in a PARAMETER block, or None where modcc would reject it (``(-mV)``).

    Units are documentation here (values are folded to numbers), so one is dropped rather
    than let it fail the build.
    """
    return unit if unit and _MODCC_UNIT.fullmatch(unit.strip()) else None


def uses_dexprelr(exprs) -> bool:
    return any(e.has(dexprelr) for e in exprs)


__all__ = ["nmodl", "lower_piecewise", "Line", "modcc_unit", "uses_dexprelr", "DEXPRELR_FUNCTION"]
