"""`gradgen convert --homeostatic …`: the command-line options of a homeostatic conversion."""
from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from gradgen.errors import GradgenError

if TYPE_CHECKING:  # the library (SymPy, Arbor) loads only when a conversion runs
    from gradgen.homeostasis.convert import HomeostaticConfig


def add_options(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_argument_group("homeostatic control (with --homeostatic)")
    group.add_argument("--homeostatic", action="store_true",
                       help="the parameters learn while the simulation runs (dθ/dt = −α·scale²·de/dθ)")
    group.add_argument("--alpha", type=float, help="learning rate α (1/(ms·mV²) or 1/(ms·Hz²), on θ/scale)")
    group.add_argument("--forget", type=float, default=1e-4, help="forgetting rate λ in /ms (default 1e-4)")
    target = group.add_mutually_exclusive_group()
    target.add_argument("--v-target", type=float, metavar="MV", help="voltage target: e = ½(V − V*)²")
    target.add_argument("--rate-target", type=float, metavar="HZ", help="rate target: e = ½(f − f*)²")
    group.add_argument("--tau-rate", type=float, default=2000.0, help="rate smoothing time in ms (default 2000)")
    group.add_argument("--max-rate", type=float, default=math.inf,
                       help="cap on |d(θ/scale)/dt| in /ms (default none)")
    group.add_argument("--start", action="append", default=[], metavar="NAME=VALUE", help="θ(0) (default: .mod value)")
    group.add_argument("--scale", action="append", default=[], metavar="NAME=VALUE", help="θ scale (default: θ(0))")
    group.add_argument("--bounds", action="append", default=[], metavar="NAME=LO:HI", help="clip θ (default 0:inf)")
    group.add_argument("--noise", action="append", default=None, nargs="?", const="", metavar="KEY=VALUE,...",
                       help="add the built-in noisy input 'noise' (gain, mu, sigma in mA/cm², tau in ms)")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for text in items:
        for item in text.split(","):
            if item.strip():
                name, sep, value = item.partition("=")
                if not sep:
                    raise GradgenError(f"--{what} {item!r}: expected NAME=VALUE")
                out[name.strip()] = value.strip()
    return out


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise GradgenError(f"--{what}: {text!r} is not a number") from None


def config_from_args(args: argparse.Namespace) -> "HomeostaticConfig":
    """The :class:`HomeostaticConfig` the options describe (GradgenError if incomplete)."""
    from gradgen.homeostasis.convert import HomeostaticConfig, RateTarget, VoltageTarget

    if args.alpha is None:
        raise GradgenError("--homeostatic needs --alpha", hint="e.g. --alpha 1e-6 --forget 1e-4")
    if args.v_target is not None:
        target: VoltageTarget | RateTarget = VoltageTarget(args.v_target)  # noqa: F821
    elif args.rate_target is not None:
        target = RateTarget(args.rate_target, tau_rate=args.tau_rate)
    else:
        raise GradgenError("--homeostatic needs --v-target MV or --rate-target HZ")
    bounds = {}
    for name, text in _pairs(args.bounds, "bounds").items():
        lo, sep, hi = text.partition(":")
        if not sep:
            raise GradgenError(f"--bounds {name}={text}: expected LO:HI")
        bounds[name] = (_float(lo, "bounds"), _float(hi, "bounds"))
    noise = None
    if args.noise is not None:
        noise = {k: _float(v, "noise") for k, v in _pairs(args.noise, "noise").items()}
    return HomeostaticConfig(
        alpha=args.alpha, lam=args.forget, target=target, max_rate=args.max_rate,
        start={k: _float(v, "start") for k, v in _pairs(args.start, "start").items()},
        scale={k: _float(v, "scale") for k, v in _pairs(args.scale, "scale").items()},
        bounds=bounds, noise=noise)
