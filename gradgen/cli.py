"""The `gradgen` command line: convert, build, check, demo.

Exit status: 0 success, 1 a check failed, 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import warnings
from pathlib import Path

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.strict_json import strict_json

FORWARD_TOLERANCE_MV = 1e-8
#: on a morphology the gradient cell is the transformed cell: rounding of the transform adds
#: up to 1.1e-8 mV in 50 ms (branched cell; C4A 2e-9), the floor of merely translating a cell
MORPHOLOGY_FORWARD_TOLERANCE_MV = 1e-7


def _params(args) -> list | None:
    from gradgen.params import parse_param_list

    if args.all_params:
        return None
    return parse_param_list(args.params)


def _add_param_options(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--params", action="append", metavar="MECH.PARAM[@REGION],...",
                       help="parameters θ to differentiate by (repeatable, comma lists)")
    group.add_argument("--all-params", action="store_true", help="every PARAMETER of every input")


def _add_target_option(cmd: argparse.ArgumentParser) -> None:
    from gradgen.targets import TARGETS

    cmd.add_argument("--target", choices=TARGETS, default="arbor", help="simulator (default arbor)")
    cmd.add_argument("--scheme", help="the target's carrier scheme (default its first; neuron: shadow, or "
                     "corrected / naive for the ion carrier)")


def cmd_convert(args) -> int:
    from gradgen.convert import convert

    if args.homeostatic:
        from gradgen.homeostasis.cli import config_from_args
        from gradgen.homeostasis.convert import convert_homeostatic

        if args.all_params:
            raise GradgenError("--homeostatic needs the learned parameters named", hint="use --params")
        if args.target != "arbor":
            raise GradgenError("--homeostatic is built for the Arbor target only", hint="drop --target")
        manifest = convert_homeostatic(args.mod, args.output, _params(args), config_from_args(args))
    else:
        manifest = convert(args.mod, args.output, _params(args), scheme=args.scheme, target=args.target)
    names = ", ".join(p.name for p in manifest.parameters)
    print(f"wrote {len(manifest.mechanisms)} gradient mechanism(s) for {len(manifest.parameters)} "
          f"parameter(s) ({names}) to {args.output}")
    return 0


def cmd_build(args) -> int:


    from gradgen.outputs import replace_file
    from gradgen.targets.arbor.build import build_directory, is_catalogue

    built = build_directory(args.directory, "gradgen")
    output = replace_file(args.output, built, is_catalogue, "an Arbor catalogue")
    print(f"built {output}")
    return 0


def cmd_translate(args) -> int:
    from gradgen.targets.arbor.translate import translate_files

    for path in translate_files(args.mod, args.output):
        print(f"wrote {path}")
    return 0


def cmd_coverage(args) -> int:
    """`check` over a directory (or with --coverage): one row per file, each file on its own."""
    from tqdm import tqdm

    from gradgen.checks.coverage import (
        coverage,
        format_table,
        mod_files,
        row_ok,
        rows_json,
    )

    if not args.all_params:
        raise GradgenError("a coverage check takes every parameter of each file",
                           hint="use --all-params with a directory or --coverage")
    files = mod_files(args.mod)
    # disable=None: a progress bar only on a terminal (stderr stays one line for errors)
    with tqdm(total=len(files), desc="coverage", disable=args.json or None, file=sys.stderr) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update()

        rows = coverage(args.mod, args.dt, args.tfinal, args.stimulus, progress=step)
    print(rows_json(rows) if args.json else format_table(rows))
    return 0 if all(row_ok(r, FORWARD_TOLERANCE_MV, args.tolerance) for r in rows) else 1


def _check_run_options(args) -> None:
    """The simulation options of `check`, before anything is converted or built."""
    for option, value in (("--dt", args.dt), ("--tfinal", args.tfinal), ("--tolerance", args.tolerance)):
        if not (math.isfinite(value) and value > 0):
            raise GradgenError(f"{option} {value:g}: must be a positive finite number")
    if not math.isfinite(args.stimulus):
        raise GradgenError(f"--stimulus {args.stimulus:g}: must be a finite number (nA)")
    if args.dt >= args.tfinal:
        raise GradgenError(f"--dt {args.dt:g} is not smaller than --tfinal {args.tfinal:g}",
                           hint="dt is the time step in ms, tfinal the simulated time")


def _set_values(args) -> dict[str, float]:
    """``--set MECH.PARAM=VALUE`` of `check`: θ values for the gradient run and the FD alike."""
    values = {}
    for item in args.set or []:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not math.isfinite(value):
            raise GradgenError(f"--set {item}: expected MECH.PARAM=VALUE with a finite number",
                               hint="e.g. --set IClamp2.amp=0.002")
        values[name.strip()] = value
    return values


def cmd_check(args) -> int:
    _check_run_options(args)
    values = _set_values(args)
    if values and args.target == "neuron":
        raise GradgenError("check --set is for the Arbor target", hint="drop --target neuron")
    if args.target == "neuron":
        from gradgen.targets.neuron.check import check_command

        return check_command(args)
    if args.scheme:
        raise GradgenError("check --scheme is for --target neuron", hint="convert --scheme picks Arbor's hub update")
    if args.coverage or any(Path(m).is_dir() for m in args.mod):
        if values:
            raise GradgenError("--set names θ of one check, not of a coverage table",
                               hint="check the file on its own with --set")
        return cmd_coverage(args)
    from tqdm import tqdm

    from gradgen.checks.cells import check_cell
    from gradgen.checks.fd import check_model, compared_parameters
    from gradgen.convert import convert
    from gradgen.targets.arbor.model import GradientModel

    with tempfile.TemporaryDirectory() as tmp:
        convert(args.mod, Path(tmp) / "out", _params(args))
        from gradgen.checks.coverage import use_translated_references

        use_translated_references(Path(tmp) / "out")  # NEURON-dialect originals: their translation
        model = GradientModel.load(Path(tmp) / "out", carrier=args.carrier)
        if not model.params:
            raise GradgenError("no parameter to differentiate: no input can move V",
                               hint="add the mechanisms they run beside, e.g. a channel")
        unknown = sorted(set(values) - {p.name for p in model.params})
        if unknown:
            raise GradgenError(f"--set {', '.join(unknown)}: not a parameter being checked",
                               hint="name a θ of the check as MECH.PARAM (see --params / --all-params)")
        spec, sites = check_cell(model, args.stimulus, args.tfinal, args.morphology)
        with tqdm(total=len(model.params), desc="finite differences", disable=args.json or None,
                  file=sys.stderr) as bar:
            def step(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update()

            report = check_model(model, spec, sites, args.tfinal, args.dt, values, progress=step)
    forward_tolerance = MORPHOLOGY_FORWARD_TOLERANCE_MV if args.morphology else FORWARD_TOLERANCE_MV
    ok = report.moves_v and report.forward_max_abs_diff_mV <= forward_tolerance and all(
        p["rel_error"] <= args.tolerance for p in compared_parameters(report))
    if args.json:
        print(strict_json(report.as_dict(ok)))
    else:
        print(f"dt {report.dt} ms, {args.tfinal} ms: forward max |V_gradient - V_original| = "
              f"{report.forward_max_abs_diff_mV:.3g} mV (tolerance {forward_tolerance:g})")
        if math.isfinite(report.geometry_max_abs_dV_mV):  # the ion carrier's transformed cell
            print(f"constant-radius equivalent vs original cell (hh + pas, 50 ms): max |dV| = "
                  f"{report.geometry_max_abs_dV_mV:.3g} mV")
        print(f"{'parameter':<28} {'dV/dθ rel. error':>18} {'FD convergence':>16}")
        for p in report.parameters:
            still = "" if p["moves_v"] else "  (does not move V)"
            if p.get("excluded"):
                print(f"{p['name']:<28} not compared: {p['excluded']}")
                continue
            print(f"{p['name']:<28} {p['rel_error']:>18.3e} {p['fd_convergence']:>16.1e}{still}")
        print(f"loss gradient (θ-scaled) rel. error: {report.loss_gradient_rel_error:.3e}")
        if not report.moves_v:
            print("no parameter moves V on this cell: nothing was checked")
        print("OK" if ok else f"FAILED (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def cmd_demo(args) -> int:
    from gradgen.checks.demo import run_demo

    run_demo(Path(args.output))
    return 0


def cmd_tune(args) -> int:
    from gradgen.tuning.run import run_tuning

    results = run_tuning(args.config)
    print(f"{results['method']}: RMS error {results['start_rms_mV']:.3g} -> {results['final_rms_mV']:.3g} mV "
          f"after {results['simulations']} simulations ({results['seconds']:.0f} s); "
          f"results in {results['output']}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gradgen", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    cmd = sub.add_parser("convert", help="write gradient mechanisms for .mod files")
    cmd.add_argument("mod", nargs="+", help=".mod files")
    cmd.add_argument("-o", "--output", required=True, help="output directory")
    _add_param_options(cmd)
    _add_target_option(cmd)
    from gradgen.homeostasis.cli import add_options as add_homeostatic_options

    add_homeostatic_options(cmd)
    cmd.set_defaults(run=cmd_convert)

    cmd = sub.add_parser("build", help="compile a converted directory into a catalogue")
    cmd.add_argument("directory")
    cmd.add_argument("-o", "--output", required=True, help="catalogue file (.so)")
    cmd.set_defaults(run=cmd_build)

    cmd = sub.add_parser("check", help="compare gradients with finite differences of the originals")
    cmd.add_argument("mod", nargs="+", help=".mod files")
    _add_param_options(cmd)
    cmd.add_argument("--dt", type=float, default=0.0025, help="time step in ms (default 0.0025)")
    cmd.add_argument("--tfinal", type=float, default=50.0, help="simulated time in ms (default 50)")
    cmd.add_argument("--stimulus", type=float, default=0.1, help="current step in nA (default 0.1)")
    cmd.add_argument("--tolerance", type=float, default=0.01,
                     help="largest relative L2 error of dV/dθ accepted (default 0.01)")
    cmd.add_argument("--morphology", metavar="FILE.swc",
                     help="check on this SWC morphology (mechanisms everywhere, step into the "
                          "root, V at the root and the farthest tip) instead of the cable")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument("--set", action="append", metavar="MECH.PARAM=VALUE",
                     help="check at this θ value instead of the .mod default (repeatable; gradient "
                          "and finite differences alike), e.g. a stimulus whose amplitude defaults to 0")
    cmd.add_argument("--carrier", choices=("ion", "exact"), default="exact",
                     help="how dV/dθ travels in Arbor: the exact CV-tree solve (default; the ion "
                          "carrier where it does not apply) or diffusive ions")
    _add_target_option(cmd)
    cmd.add_argument("--coverage", action="store_true",
                     help="check each file on its own and print a coverage table (implied by a "
                          "directory argument; with --json a list of one object per file)")
    cmd.set_defaults(run=cmd_check)

    cmd = sub.add_parser("translate", help="NEURON-dialect .mod files as NMODL that Arbor compiles")
    cmd.add_argument("mod", nargs="+", help=".mod files")
    cmd.add_argument("-o", "--output", required=True, help="output directory")
    cmd.set_defaults(run=cmd_translate)

    cmd = sub.add_parser("demo", help="HH axon with soma: gradients vs finite differences, and a figure")
    cmd.add_argument("-o", "--output", default="demo-output", help="directory for the figure")
    cmd.set_defaults(run=cmd_demo)

    cmd = sub.add_parser("tune", help="tune parameters to a voltage trace (LM, Adam or CMA-ES), from a TOML config")
    cmd.add_argument("config", help="TOML file, e.g. examples/io.toml")
    cmd.set_defaults(run=cmd_tune)
    return top


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Every warning as one line: gradgen's own without the code location users cannot use."""
    kind = "" if issubclass(category, GradgenWarning) else f"{category.__name__}: "
    print(f"gradgen: warning: {kind}{message}", file=sys.stderr)


def _os_error(error: OSError) -> GradgenError:
    """A file-system failure (a parent that is a file, no permission, a full disk) as one line."""
    if error.filename and isinstance(error, (FileExistsError, NotADirectoryError)):
        path = Path(error.filename)
        blocking = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocking is not None:
            return GradgenError(f"{blocking} is a file, not a directory",
                                hint="choose an output path whose parent folders are directories")
    where = f" {error.filename}" if error.filename else ""
    return GradgenError(f"cannot write or read{where}: {error.strerror or error}",
                        hint="check the path, its permissions and the free disk space")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        try:
            return args.run(args)
        except OSError as error:
            raise _os_error(error) from None
        except RecursionError:
            raise GradgenError("an input is nested too deeply to process",
                               hint="split deep expressions or nested blocks") from None
    except GradgenError as error:
        if getattr(args, "json", False):
            print(strict_json({"ok": False, "error": str(error)}))
        print(f"gradgen: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
