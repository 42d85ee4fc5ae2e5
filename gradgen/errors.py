"""The one exception type users see, with a source position and a hint."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourcePos:
    """A place in an input file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class GradgenError(Exception):
    """An error the user can cause and fix: bad NMODL, unknown parameter, missing tool.

    Its string form is one line, ``file:line:col: message (hint: ...)``, so the CLI can
    print it as is.
    """

    def __init__(self, message: str, pos: SourcePos | None = None, hint: str | None = None):
        self.message = message
        self.pos = pos
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.pos}: {self.message}" if self.pos else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class NonFiniteSimulation(GradgenError):
    """A simulation produced NaN or infinity (V or a sensitivity): it blew up.

    ``t`` (ms) and ``site`` say where it happened first, so an optimizer can reject the
    step that caused it instead of following a NaN gradient.
    """

    def __init__(self, what: str, t: float, site: str, hint: str | None = None):
        self.what, self.t, self.site = what, t, site
        super().__init__(f"the simulation blew up: {what} is not finite from t = {t:g} ms at {site}",
                         hint=hint or "check for negative conductances or a time step too large "
                                      "for the fastest membrane time constant")


class GradgenWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints one line)."""
