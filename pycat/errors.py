"""pycat's error type: a GradgenError, so the CLI and users catch one kind."""
from __future__ import annotations

from gradgen.errors import GradgenError


class PycatError(GradgenError):
    """A pycat mechanism was declared or used wrongly, or the shim cannot be built."""


class MechanismCallbackError(PycatError):
    """A Python mechanism method raised while Arbor was simulating.

    ``mechanism`` and ``method`` name where it happened; ``__cause__`` is the original
    exception. Arbor itself reports the failure as a ``RuntimeError`` whose message is
    this error's text; :func:`pycat.last_error` returns this object.
    """

    def __init__(self, mechanism: str, method: str, original: BaseException, trace: str):
        self.mechanism = mechanism
        self.method = method
        self.original = original
        self.trace = trace
        super().__init__(
            f"pycat mechanism '{mechanism}' failed in {method}: "
            f"{type(original).__name__}: {original}",
            hint="full Python traceback in pycat.last_error().trace",
        )
        self.__cause__ = original
