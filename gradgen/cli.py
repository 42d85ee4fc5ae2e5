"""The `gradgen` command line: convert, build, check, demo.

Exit status: 0 success, 1 a check failed, 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from gradgen.errors import GradgenError

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
        manifest = convert(args.mod, args.output, _params(args), target=args.target)
    names = ", ".join(p.name for p in manifest.parameters)
    print(f"wrote {len(manifest.mechanisms)} gradient mechanism(s) for {len(manifest.parameters)} "
          f"parameter(s) ({names}) to {args.output}")
    return 0


def cmd_build(args) -> int:
    import shutil

    from gradgen.targets.arbor.build import build_directory

    built = build_directory(args.directory, "gradgen")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, output)
    print(f"built {output}")
    return 0


def cmd_translate(args) -> int:
    from gradgen.targets.arbor.translate import translate

    for mod in args.mod:
        print(f"wrote {translate(mod, args.output)}")
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
    with tqdm(total=len(files), desc="coverage", disable=args.json, file=sys.stderr) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update()

        rows = coverage(args.mod, args.dt, args.tfinal, args.stimulus, progress=step)
    print(rows_json(rows) if args.json else format_table(rows))
    return 0 if all(row_ok(r, FORWARD_TOLERANCE_MV, args.tolerance) for r in rows) else 1


def cmd_check(args) -> int:
    if args.target == "neuron":
        from gradgen.targets.neuron.check import check_command

        return check_command(args)
    if args.coverage or any(Path(m).is_dir() for m in args.mod):
        return cmd_coverage(args)
    from tqdm import tqdm

    from gradgen.checks.cells import cable_cell_spec, near_far_sites, swc_cell_spec
    from gradgen.checks.fd import check_model
    from gradgen.convert import convert
    from gradgen.targets.arbor.model import GradientModel

    with tempfile.TemporaryDirectory() as tmp:
        manifest = convert(args.mod, Path(tmp) / "out", _params(args))
        from gradgen.checks.coverage import use_translated_references

        use_translated_references(Path(tmp) / "out")  # NEURON-dialect originals: their translation
        model = GradientModel.load(Path(tmp) / "out")
        points = [m.original for m in manifest.mechanisms if m.kind == "point"]
        if points:
            raise GradgenError(f"point processes ({', '.join(points)}) cannot be checked yet")
        if args.morphology:
            spec = swc_cell_spec(args.morphology, list(model.mechanisms), args.stimulus)
            sites = near_far_sites(spec.morphology)
        else:
            spec = cable_cell_spec(list(model.mechanisms), stimulus_nA=args.stimulus)
            sites = ["(location 0 0)", "(location 0 1)"]
        with tqdm(total=len(model.params), desc="finite differences", disable=args.json,
                  file=sys.stderr) as bar:
            def step(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update()

            report = check_model(model, spec, sites, args.tfinal, args.dt, progress=step)
    forward_tolerance = MORPHOLOGY_FORWARD_TOLERANCE_MV if args.morphology else FORWARD_TOLERANCE_MV
    ok = report.forward_max_abs_diff_mV <= forward_tolerance and all(
        p["rel_error"] <= args.tolerance for p in report.parameters)
    if args.json:
        print(json.dumps(report.as_dict(ok)))
    else:
        print(f"dt {report.dt} ms, {args.tfinal} ms: forward max |V_gradient - V_original| = "
              f"{report.forward_max_abs_diff_mV:.3g} mV (tolerance {forward_tolerance:g})")
        print(f"constant-radius equivalent vs original cell (hh + pas, 50 ms): max |dV| = "
              f"{report.geometry_max_abs_dV_mV:.3g} mV")
        print(f"{'parameter':<28} {'dV/dθ rel. error':>18} {'FD convergence':>16}")
        for p in report.parameters:
            print(f"{p['name']:<28} {p['rel_error']:>18.3e} {p['fd_convergence']:>16.1e}")
        print(f"loss gradient (θ-scaled) rel. error: {report.loss_gradient_rel_error:.3e}")
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

    cmd = sub.add_parser("tune", help="tune parameters to a voltage trace (Adam or CMA-ES), from a TOML config")
    cmd.add_argument("config", help="TOML file, e.g. examples/io.toml")
    cmd.set_defaults(run=cmd_tune)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except GradgenError as error:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(error)}))
        print(f"gradgen: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
