"""The `edgebench` command: parses arguments and dispatches; each command imports lazily.

Exit codes: 0 everything measured, 1 a measurement (or later a gate) failed or could not be
saved, 2 unusable input (bad devices.yaml, missing model, bad option), 130 interrupted (Ctrl-C
or SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edgebench.agent import __version__

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_MODELS = ("digits.onnx", "digits.tflite", "digits.int8.tflite")
EXAMPLE_EVAL = "digits_eval.npz"


STORE_HELP = (
    "where runs are kept: postgresql://… (shared) or a results directory "
    "(default: $EDGEBENCH_STORE, else ./results); RUN arguments then name a run id, latest, "
    "a stored name or tag:LABEL[@DEVICE]"
)


class UsageError(Exception):
    """Unusable input; printed as one line, exit code 2."""


def _example() -> List[Path]:
    models = [EXAMPLES / m for m in EXAMPLE_MODELS if (EXAMPLES / m).is_file()]
    if not models:
        raise UsageError("no --model given and the bundled example is not in %s" % EXAMPLES)
    return models


def _execute(
    args: argparse.Namespace,
    store: Any,
    request: Any,
    devices: List[Any],
    todo: Optional[Dict[str, List[str]]] = None,
) -> Tuple[List[Any], Any]:
    """Measure with live progress, then write report.md; returns (records, runner)."""
    from .report.markdown import run_report
    from .run.pack import build, default_cache
    from .run.progress import Display
    from .run.runner import Runner
    from .store import StoreError

    display = Display(quiet=args.quiet or args.json)
    runner = Runner(store, request, devices, build(default_cache()), display.event, todo=todo)
    with display:
        records = runner.run()
    try:
        store.write_text("report.md", run_report(store.meta(), records))
    except StoreError as exc:
        runner.note_unsaved(exc)
    return records, runner


def cmd_resume(args: argparse.Namespace) -> int:
    """Measure only what a stored run is missing, with the settings it was started with."""
    from .clock import utc_now
    from .config import load_inventory
    from .run.runner import Request, unfinished
    from .store import META_FILE, RunStore

    store = _store(args, args.out).open(args.resume)
    source = store.path / META_FILE if isinstance(store, RunStore) else store.where
    request = Request.from_description(store.meta().request, source)
    todo = unfinished(store)
    names = [device for device, artifacts in todo.items() if artifacts]
    devices = load_inventory(args.devices_file).select(",".join(names)) if names else []
    store.update_meta(resumed_at=utc_now())
    store.mark_latest()
    records, runner = _execute(args, store, request, devices, todo)
    return _finish(args, store, records, runner)


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume:
        return cmd_resume(args)
    from .config import load_inventory, parse_input_shapes
    from .plan import build as build_plan
    from .plan import load_plan
    from .report import tradeoff
    from .run.runner import Artifact, Request
    from .store import DEFAULT_ROOT
    from .store.api import check_tag
    from .store.backend import LocalStore

    plan = load_plan(args.plan) if args.plan else None
    if plan is not None and args.model:
        raise UsageError("%s names the models; drop --model" % args.plan)
    input_shapes = dict(plan.input_shapes if plan else {}, **parse_input_shapes(args.input_shape))
    if plan is not None:  # the variants are built at the shapes they are measured at
        plan = dataclasses.replace(
            plan,
            options=dataclasses.replace(
                plan.options, input_shapes={k: tuple(v) for k, v in input_shapes.items()}
            ),
        )
    if args.tag is not None:
        check_tag(args.tag)
    runs = _store(args, args.out)  # a database that cannot be reached stops us here
    inventory = load_inventory(args.devices_file)
    devices = (
        inventory.select(args.devices)
        if plan is None or args.devices
        else plan.select_devices(inventory)
    )
    paths = [Path(m) for m in args.model] if args.model else [] if plan else _example()
    eval_path = (
        Path(args.eval)
        if args.eval
        else plan.eval_path
        if plan
        else (EXAMPLES / EXAMPLE_EVAL if not args.model else None)
    )
    if eval_path is not None:
        _check_eval(eval_path)
    settings = dict(plan.settings if plan else {}, **_settings(args))
    _check_settings(settings)
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UsageError(
            "two --model files share the name %r; results are keyed by file name"
            % next(n for n in names if names.count(n) > 1)
        )
    artifacts = [Artifact.from_path(p) for p in paths]
    builds: List[Dict[str, Any]] = []
    if plan is not None:  # the fp32 originals and the variants built from them
        from .run.progress import BuildDisplay

        echo = functools.partial(_echo, args)
        with BuildDisplay(echo, quiet=args.quiet or args.json) as display:
            artifacts, builds = build_plan(
                plan,
                plan.variants_dir
                or (runs.root if isinstance(runs, LocalStore) else Path(args.out or DEFAULT_ROOT))
                / "variants",
                echo,
                display,
            )
    request = Request(
        artifacts=tuple(artifacts),
        eval_path=eval_path,
        input_shapes=input_shapes,
        settings=settings,
        require_accelerator=plan.require_accelerator if plan else False,
        pipeline=plan.pipeline if plan else None,
    )
    store = _new_run(
        args,
        runs,
        inventory,
        request,
        devices,
        dict(plan.describe(), builds=builds) if plan else None,
    )
    records, runner = _execute(args, store, request, devices)
    code = _finish(args, store, records, runner)
    trade_offs = tradeoff.text(store.meta(), records)
    if trade_offs and not (args.quiet or args.json):
        print("\n" + trade_offs, end="")
    return 1 if code == 0 and any(b["status"] == "error" for b in builds) else code


def _settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The agent settings given on the command line (those a command has)."""
    return {
        k: getattr(args, k)
        for k in (
            "threads",
            "min_seconds",
            "min_iterations",
            "warmup_seconds",
            "warmup_iterations",
            "max_seconds",
            "max_iterations",
            "target_precision",
            "rounds",
            "cold_starts",
            "idle_gaps",
            "profile_ops",
        )
        if getattr(args, k, None) is not None
    }


def _new_run(
    args: argparse.Namespace,
    runs: Any,
    inventory: Any,
    request: Any,
    devices: List[Any],
    plan: Optional[Dict[str, Any]] = None,
) -> Any:
    """A new run in the store ``runs`` with its run.json, marked latest; not yet measured."""
    from .clock import utc_now
    from .hostinfo import host_info
    from .store import RunMeta

    store = runs.create()
    store.write_meta(
        RunMeta(
            run_id=store.run_id,
            created_at=utc_now(),
            argv=tuple(sys.argv[1:]),
            tool=host_info(),
            inventory=inventory.source,
            request=request.describe(),
            devices={
                d.name: {"kind": d.kind, "host": d.host, "tags": list(d.tags)} for d in devices
            },
            status={d.name: {a.name: "pending" for a in request.artifacts} for d in devices},
            plan=plan,
            tag=getattr(args, "tag", None),
        )
    )
    store.mark_latest()
    return store


def _check_settings(settings: Dict[str, Any]) -> None:
    """Bad settings are exit 2 here, before anything runs, not job-invalid on every board."""
    from edgebench.agent.protocol import JobError, parse_settings

    try:
        parse_settings(settings, lambda key: "--" + key.replace("_", "-"))
    except JobError as exc:
        raise UsageError(str(exc)) from None


def _check_eval(path: Path) -> None:
    """What the host can tell about an eval set without the model, before anything runs."""
    from edgebench.agent.faults import Fault
    from edgebench.agent.tensors import load_eval

    if not path.is_file():
        raise UsageError("%s: eval set not found" % path)
    try:
        load_eval(str(path))
    except Fault as fault:
        raise UsageError(fault.message) from None


def _echo(args: argparse.Namespace, line: str) -> None:
    """A build line on stderr; with --quiet only the errors."""
    if not args.quiet or line.startswith("error"):
        print(line, file=sys.stderr)


def _show(line: str) -> None:
    """An ``optimize`` line, as soon as it is known: errors on stderr, the rest on stdout."""
    print(line, file=sys.stderr if line.startswith("error") else sys.stdout, flush=True)


def _torch_model(args: argparse.Namespace) -> Any:
    """The PyTorch model MODEL names (``file.py:build``), or None for a model file."""
    from .config import parse_input_shapes
    from .optimize.torch_intake import is_entry, torch_model

    if Path(args.model).is_file() or not is_entry(args.model):
        if args.weights or args.finetune or args.export:
            raise ValueError(
                "--weights, --finetune and --export go with a PyTorch model (MODEL as "
                "file.py:build)"
            )
        return None
    return torch_model(
        args.model,
        parse_input_shapes(args.input_shape),
        Path(args.weights) if args.weights else None,
        args.finetune,
        export=args.export or "onnx",
    )


def cmd_optimize(args: argparse.Namespace) -> int:
    from .config import parse_input_shapes
    from .optimize.variants import (
        VARIANT_HELP,
        BuildError,
        Options,
        build_variants,
        notes,
        parse_variant,
        variant_name,
    )
    from .run.progress import BuildDisplay

    try:
        variants = args.variants and [
            variant_name(parse_variant(v)) for v in args.variants.split(",") if v.strip()
        ]
        if variants == []:
            raise ValueError(
                "--variants %r names no variant (expected %s)" % (args.variants, VARIANT_HELP)
            )
        options = Options(
            Path(args.calib) if args.calib else None,
            args.calib_method,
            args.prune_scope,
            args.activations,
            {k: tuple(v) for k, v in parse_input_shapes(args.input_shape).items()},
        )
        torch = _torch_model(args)
        with BuildDisplay(_show) as display:
            if torch is None:
                _, outcomes = build_variants(
                    Path(args.model), variants, Path(args.out), options, display
                )
            else:
                from .optimize.torch_intake import build_torch_variants

                _, _, outcomes = build_torch_variants(
                    torch, variants, Path(args.out), options, display
                )
    except (ValueError, BuildError) as exc:
        raise UsageError(str(exc)) from None
    for line in notes(outcomes):
        _show(line)
    return 0 if all(o.ok for o in outcomes) else 1


def _finish(args: argparse.Namespace, store: Any, records: list, runner: Any) -> int:
    import json

    from .report.markdown import terminal_table
    from .summary import rows

    if args.json:
        print(json.dumps(rows(records, store.run_id), indent=2))
    elif not args.quiet:
        terminal_table(records)
    failed = [r for r in records if not r.ok]
    for r in failed:
        print(
            "failed: %s / %s: %s: %s" % (r.device, r.artifact.get("name"), r.reason, r.message),
            file=sys.stderr,
        )
    inaccurate = [r for r in records if r.ok and r.accuracy.get("error")]
    for r in inaccurate:  # timed, but its accuracy pass failed
        print(
            "failed: %s / %s: accuracy: %s"
            % (r.device, r.artifact.get("name"), r.accuracy["error"]),
            file=sys.stderr,
        )
    print("results: %s" % store.where, file=sys.stderr)
    for line in dict.fromkeys(runner.unsaved):
        print("edgebench: error: %s" % line, file=sys.stderr)
    if runner.interrupted:
        print("interrupted: finished measurements are kept", file=sys.stderr)
        return 130
    return 1 if failed or inaccurate or runner.unsaved else 0


def cmd_devices(args: argparse.Namespace) -> int:
    from .config import load_inventory
    from .devices import list_devices, probe_devices

    inventory = load_inventory(args.devices_file)
    devices = inventory.select(args.devices) if args.devices else list(inventory.devices)
    if args.probe:
        return probe_devices(devices, as_json=args.json)
    list_devices(inventory, devices, as_json=args.json)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.markdown import render

    if args.history:
        return cmd_report_history(args)
    if args.run_dir is None:
        raise UsageError("report: give RUN_DIR, or --history")
    if args.json or args.out:
        raise UsageError("report: --json and --out go with --history (else see --format)")
    store = _store(args).open(args.run_dir)
    if args.format == "html":
        from .report.html import write_report

        print(write_report(store))
        return 0
    sys.stdout.write(render(store, args.format))
    return 0


def cmd_report_history(args: argparse.Namespace) -> int:
    """p50/p90 over runs as one offline HTML page (or its data as JSON)."""
    from .analysis.history import entries as run_index
    from .analysis.history import series
    from .report.history_html import history_json, render_history
    from .store import atomic_write, output_file
    from .store.backend import LocalStore

    runs = _store(args, args.run_dir)
    entries = run_index(runs)
    found = series(entries, args.device, args.artifact, args.allow_different)
    if not found:
        raise UsageError("no measurement in %s to draw a history of" % runs.label)
    if args.json:
        _print_json(history_json(entries, found, args.threshold))
        return 0
    default = runs.root if isinstance(runs, LocalStore) else Path(".")
    path = output_file(args.out or default / "history.html")
    atomic_write(path, render_history(entries, found, args.threshold, runs.label))
    print(path)
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from .config import load_inventory
    from .lab import as_json, boards, show, with_leases

    runs = _store(args, args.root)
    found = boards(runs)
    if not found:
        raise UsageError("%s: no board measured yet" % runs.label)
    if not args.no_leases:
        found = with_leases(found, load_inventory(args.devices_file).devices)
    if args.json:
        _print_json(as_json(found))
    else:
        show(found)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError
    from .export.command import export_run

    try:
        return export_run(
            _store(args), args.run, args.to, args.tracking_uri, args.experiment, args.json
        )
    except ExportError as exc:
        raise UsageError(str(exc)) from None


def cmd_check(args: argparse.Namespace) -> int:
    from .analysis.budgets import load_budgets
    from .analysis.gate import as_json, gate, junit, seconds, show
    from .store import atomic_write, output_file

    junit_path = output_file(args.junit) if args.junit else None
    if args.ab:
        if args.run:
            raise UsageError("check --ab measures a new run; drop RUN (%s)" % args.run)
        if not args.baseline:
            raise UsageError("check --ab needs --baseline: a model file or a stored run")
        budgets = load_budgets(args.budgets, None)  # read before a long measurement
        store, runner = _ab_run(args)
        if runner.interrupted:
            print("interrupted: finished measurements are kept", file=sys.stderr)
            return 130
        baseline = None
    else:
        if not args.run:
            raise UsageError("check needs a RUN, or --ab MODEL with --baseline")
        runs = _store(args)
        store = runs.open(args.run)
        budgets = load_budgets(args.budgets, store.meta())
        baseline = runs.open(args.baseline, exclude=store.run_id) if args.baseline else None
    verdicts = gate(store, budgets, baseline, args.allow_different)
    if args.json:
        _print_json(as_json(verdicts, store.run_id))
    else:
        show(verdicts)
    if baseline is not None:
        from .run.rounds import few_rounds_note

        note = few_rounds_note(baseline.records(), store.records())
        if note:
            print(note, file=sys.stderr)
    if junit_path is not None:
        durations = {(r.device, str(r.artifact["name"])): seconds(r) for r in store.records()}
        atomic_write(junit_path, junit(verdicts, store.run_id, durations))
    return 1 if any(v.failed for v in verdicts) else 0


def _ab_run(args: argparse.Namespace) -> Tuple[Any, Any]:
    """``check --ab``: the candidate and its baseline measured in one run, rounds
    interleaved on each device; the run and its runner."""
    from .config import load_inventory, parse_input_shapes
    from .run.ab import AB_ROUNDS, ab_artifacts
    from .run.runner import Request

    settings = dict(_settings(args))
    settings.setdefault("rounds", AB_ROUNDS)
    _check_settings(settings)
    if settings["rounds"] < 2:
        raise UsageError("--rounds: an A/B check needs 2 or more (pairs of rounds)")
    runs = _store(args, args.out)
    cand, base = ab_artifacts(Path(args.ab), args.baseline, runs)
    inventory = load_inventory(args.devices_file)
    devices = inventory.select(args.devices)
    request = Request((base, cand), None, parse_input_shapes(args.input_shape), settings)
    store = _new_run(args, runs, inventory, request, devices)
    _, runner = _execute(args, store, request, devices)
    print("results: %s" % store.where, file=sys.stderr)
    for line in dict.fromkeys(runner.unsaved):
        print("edgebench: error: %s" % line, file=sys.stderr)
    return store, runner


def cmd_decide(args: argparse.Namespace) -> int:
    from .analysis.budgets import load_budgets
    from .analysis.decide import as_json, decide, manifest, show
    from .analysis.sign import check_key, write_manifest
    from .clock import utc_now
    from .store import RunStore, output_file

    runs = _store(args)
    store, *more = [runs.open(r) for r in args.run]
    path = output_file(args.manifest or runs.default_file(store, "manifest.json"))
    if args.sign_key:
        check_key(args.sign_key)  # before anything is written
    budgets = load_budgets(args.budgets, store.meta())
    choices = decide(store, budgets, args.profile, more, args.allow_different)
    if not args.json:
        show(choices, args.profile)
    text = manifest(store, choices, budgets, args.profile, utc_now(), more)
    sig = write_manifest(path, text, args.sign_key)
    if not isinstance(store, RunStore):  # kept with the run where the run is not a folder
        store.write_text(path.name, text)
        if sig is not None:
            store.write_text(sig.name, sig.read_text(encoding="utf-8"))
    if args.json:
        _print_json(
            {
                "run_id": store.run_id,
                "profile": args.profile,
                "manifest": str(path),
                "signature": str(sig) if sig is not None else None,
                "choices": as_json(choices, args.profile),
            }
        )
    else:
        print("manifest: %s" % path)
        if sig is not None:
            print("signature: %s" % sig)
    return 1 if any(c.chosen is None for c in choices) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .formatting import print_table
    from .report.compare import side_by_side

    runs = _store(args)
    sbs = side_by_side([runs.open(r) for r in args.runs], args.by, args.reference)
    if args.json:
        _print_json(sbs.as_json(args.allow_different))
        return 0
    print_table(*sbs.table(args.allow_different))
    for line in sbs.failures() + sbs.notes(args.allow_different) + sbs.op_diffs():
        print(line)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .analysis.history import as_json, series, show
    from .analysis.history import entries as load_entries

    runs = _store(args, args.root)
    entries = load_entries(runs)
    found = series(entries, args.device, args.artifact, args.allow_different)
    if not found:
        raise UsageError(
            "no measurement in %s matches%s%s"
            % (
                runs.label,
                " --device %s" % args.device if args.device else "",
                " --artifact %s" % args.artifact if args.artifact else "",
            )
        )
    if args.json:
        _print_json(as_json(entries, found, args.threshold))
    else:
        show(entries, found, args.threshold)
    return 0


def _store(args: argparse.Namespace, root: Optional[str] = None) -> Any:
    """The store this command reads and writes: ``--store``, else ``EDGEBENCH_STORE``, else
    the local results directory (``root``: the command's own --out/--root, if given)."""
    from .store import open_store, store_location

    return open_store(store_location(args.store), root)


def cmd_store(args: argparse.Namespace) -> int:
    """``edgebench store import|name|get``."""
    from .store.postgres import PgStore

    runs = _store(args)
    if args.action == "import":
        if not isinstance(runs, PgStore):
            raise UsageError(
                "store import copies runs into a database: give --store "
                "postgresql://… or set EDGEBENCH_STORE"
            )
        count, records, known = runs.import_dir(Path(args.dir))
        if not count:
            raise UsageError("%s: no run directories in it" % args.dir)
        print(
            "imported %d runs (%d records) from %s into %s; %d were there already"
            % (count, records, args.dir, runs.label, known)
        )
    elif args.action == "name":
        run = runs.open(args.run)
        runs.name(args.name, run)
        print("%s -> %s" % (args.name, run.where))
    else:
        sys.stdout.write(runs.read_text(runs.open(args.run), args.file))
    return 0


def _print_json(doc: Any) -> None:
    """A command's one JSON document on stdout (``--json``)."""
    import json

    print(json.dumps(doc, indent=2, ensure_ascii=False))


def _allow_different(parser: argparse.ArgumentParser) -> None:
    from .analysis.definition import KEYS

    parser.add_argument(
        "--allow-different",
        action="append",
        default=[],
        choices=KEYS,
        metavar="KEY",
        help="compare records whose measurement setting KEY differs (repeatable; one of: "
        "%s)" % ", ".join(KEYS),
    )


def _seconds_list(text: str) -> List[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds like 1,5,30, got %r" % text) from None


def _measure_options(parser: Any) -> None:
    """The options of a measurement that ``run`` and ``check --ab`` share."""
    parser.add_argument("--devices", metavar="NAMES", help="comma-separated device names or tags")
    parser.add_argument("--threads", type=int, metavar="N", help="runtime threads")
    parser.add_argument("--min-seconds", type=float, metavar="S")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="cap on each timed window")
    parser.add_argument("--warmup-seconds", type=float, metavar="S")
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="shape for an input with dynamic dimensions, e.g. input:1,3,224,224",
    )


def _fraction(text: str) -> float:
    """An option that is a fraction of 0 or more (0.05 = 5%)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(
            "expected a fraction of 0 or more such as 0.05, not %r" % text
        )
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgebench", description="Benchmark ML models on edge devices."
    )
    p.add_argument("--version", action="version", version="edgebench " + __version__)
    p.add_argument("--store", metavar="URL|DIR", help=STORE_HELP)
    p.add_argument(
        "--devices-file",
        metavar="FILE",
        help="device inventory (default ./devices.yaml, else only 'local')",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="benchmark models on devices")
    run.add_argument(
        "plan",
        nargs="?",
        metavar="PLAN.yaml",
        help="a plan: models, variants to build, data, devices, settings, budgets "
        "(options given here override it)",
    )
    run.add_argument(
        "--model",
        action="append",
        metavar="PATH",
        help="an .onnx or .tflite file (repeatable; default: the bundled example)",
    )
    _measure_options(run)
    run.add_argument("--eval", metavar="FILE.npz", help="eval set with 'inputs' and 'labels'")
    run.add_argument("--min-iterations", type=int, metavar="N")
    run.add_argument(
        "--max-iterations",
        type=int,
        metavar="N",
        help="cap on the samples kept per artifact (default 100000)",
    )
    run.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="measure every artifact in N fresh processes, interleaved (default 1; "
        "use 3 or more for runs that check --baseline gates)",
    )
    run.add_argument(
        "--target-precision",
        type=float,
        metavar="F",
        help="also measure until the p50's 95%% interval is within ±F of it (0.01: ±1%%), "
        "capped by --max-seconds",
    )
    run.add_argument(
        "--cold-starts",
        type=int,
        metavar="K",
        help="time import, model load and first inference in K fresh processes (the rounds "
        "count among them)",
    )
    run.add_argument(
        "--idle-gaps",
        type=_seconds_list,
        metavar="S,S,...",
        help="after the timed window, the first inference after each idle gap (seconds), "
        "against the warm p50",
    )
    run.add_argument(
        "--profile-ops",
        action="store_const",
        const=True,
        help="after the timed window, profile each operator in a separate pass "
        "(ONNX Runtime's profiler; TFLite: an estimate from single-op models)",
    )
    run.add_argument("--warmup-iterations", type=int, metavar="N")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="results root (default: --store, else ./results; with a database store: "
        "where a plan's variants are built)",
    )
    run.add_argument(
        "--tag", metavar="LABEL", help="label the run (a branch: --baseline tag:LABEL finds it)"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="measure only what this stored run is missing (other options come from the run)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress and no table")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(func=cmd_run)

    opt = sub.add_parser("optimize", help="build fp16, int8 and pruned variants of a model")
    opt.add_argument(
        "model",
        metavar="MODEL",
        help="an .onnx or .tflite file, or a PyTorch model: path/to/file.py:build or "
        "package.module:build (a function returning an nn.Module; needs edgebench[torch])",
    )
    opt.add_argument(
        "--weights", metavar="FILE", help="PyTorch model: a state_dict saved with torch.save"
    )
    opt.add_argument(
        "--finetune",
        metavar="ENTRY",
        help="PyTorch model: file.py:function run after structured-N (model in, model out)",
    )
    opt.add_argument(
        "--export",
        choices=("onnx", "tflite"),
        help="PyTorch model: the format it is exported to and its variants are built in "
        "(default onnx; tflite needs edgebench[litert-torch])",
    )
    opt.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS",
        help="an input's dims, e.g. images:1,3,640,640: dynamic models are pre-processed and "
        "calibrated at them; a PyTorch model's example input shape (repeatable)",
    )
    opt.add_argument(
        "--variants",
        metavar="LIST",
        help="comma-separated: fp16, int8-dynamic, int8-static[-minmax|-entropy|"
        "-percentile], prune-N, or steps joined with '+' such as "
        "prune-50+int8-static (default: every recipe for the format)",
    )
    opt.add_argument(
        "--calib", metavar="FILE.npz", help="calibration set (an 'inputs' array) for int8-static"
    )
    opt.add_argument(
        "--calib-method",
        default="minmax",
        metavar="M",
        help="minmax (default), entropy or percentile",
    )
    opt.add_argument(
        "--prune-scope",
        default="global",
        metavar="S",
        help="global (default: one magnitude threshold over all weights) or "
        "layer (N%% of each weight tensor)",
    )
    opt.add_argument(
        "--activations",
        default="uint8",
        metavar="T",
        help="ONNX int8-static activations: uint8 (default, fastest on x86) or int8",
    )
    opt.add_argument(
        "--out",
        default="variants",
        metavar="DIR",
        help="where variants and their manifests go (default ./variants)",
    )
    opt.set_defaults(func=cmd_optimize)

    dev = sub.add_parser("devices", help="list the inventory, or probe the devices")
    dev.add_argument("--probe", action="store_true", help="ask each device's agent")
    dev.add_argument("--devices", metavar="NAMES", help="only these names or tags")
    dev.add_argument("--json", action="store_true")
    dev.set_defaults(func=cmd_devices)

    rep = sub.add_parser("report", help="re-render a stored run, or draw the history")
    rep.add_argument(
        "run_dir", nargs="?", metavar="RUN_DIR", help="a run; with --history, the results root"
    )
    rep.add_argument(
        "--format",
        choices=("md", "csv", "json", "html"),
        default="md",
        help="html: write RUN_DIR/report.html and print its path",
    )
    rep.add_argument(
        "--history",
        action="store_true",
        help="p50/p90 over runs per board and model slot, with regressions and breaks "
        "marked: write an offline HTML page (ROOT/history.html) and print its path",
    )
    rep.add_argument("--out", metavar="FILE", help="--history: the page to write")
    rep.add_argument("--json", action="store_true", help="--history: print its data as JSON")
    rep.add_argument("--device", metavar="D", help="--history: as for history")
    rep.add_argument("--artifact", metavar="A", help="--history: as for history")
    rep.add_argument("--threshold", type=_fraction, default=0.05, metavar="F")
    _allow_different(rep)
    rep.set_defaults(func=cmd_report)

    lab = sub.add_parser("lab", help="the boards the results have seen, and their leases")
    lab.add_argument("--root", metavar="DIR", help="results root (default: the store)")
    lab.add_argument(
        "--no-leases", action="store_true", help="do not ask the boards who holds them"
    )
    lab.add_argument("--json", action="store_true", help="print one JSON document")
    lab.set_defaults(func=cmd_lab)

    exp = sub.add_parser("export", help="a stored run to MLflow, or as Bencher JSON")
    exp.add_argument("run", metavar="RUN", help="run directory, or a results root (its latest)")
    exp.add_argument("--to", choices=("mlflow", "bencher"), required=True)
    exp.add_argument("--tracking-uri", metavar="URI", help="mlflow: the tracking server")
    exp.add_argument(
        "--experiment", default="edgebench", metavar="NAME", help="mlflow: experiment name"
    )
    exp.add_argument("--json", action="store_true", help="mlflow: print what was exported")
    exp.set_defaults(func=cmd_export)

    chk = sub.add_parser("check", help="gate a run on budgets and a baseline (exit 1 if not)")
    chk.add_argument(
        "run", nargs="?", metavar="RUN", help="run directory, or a results root (its latest)"
    )
    ab = chk.add_argument_group(
        "A/B on the board",
        "--ab MODEL --baseline FILE|RUN: measure the candidate and its baseline in one "
        "window on each device, rounds interleaved, and judge the pairs",
    )
    ab.add_argument("--ab", metavar="MODEL", help="the candidate model file to measure")
    _measure_options(ab)
    ab.add_argument(
        "--rounds", type=int, metavar="N", help="pairs of rounds (default 5; at least 2)"
    )
    ab.add_argument("--out", metavar="DIR", help="results root (default: the store)")
    ab.add_argument("--quiet", action="store_true", help="no progress")
    chk.add_argument(
        "--budgets",
        metavar="FILE",
        help="budgets YAML, or a plan with a 'budgets:' section (default: the "
        "budgets of the plan the run came from)",
    )
    chk.add_argument(
        "--baseline",
        metavar="RUN",
        help="run to check for regressions against (with --ab: a model file, or a run whose "
        "artifact of the same name is the baseline)",
    )
    chk.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")
    chk.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the table"
    )
    _allow_different(chk)
    chk.set_defaults(func=cmd_check)

    dec = sub.add_parser("decide", help="choose the variant that ships on each device")
    dec.add_argument(
        "run",
        nargs="+",
        metavar="RUN",
        help="a run; more runs decide as one (per board and artifact the newest measurement; "
        "the manifest goes to the first)",
    )
    dec.add_argument("--budgets", metavar="FILE", help="as for check")
    dec.add_argument(
        "--profile",
        choices=("most-accurate", "fastest", "smallest"),
        default="most-accurate",
        help="how to choose among variants that fit",
    )
    dec.add_argument(
        "--manifest",
        metavar="FILE",
        help="deployment manifest to write (default RUN/manifest.json)",
    )
    dec.add_argument(
        "--sign-key",
        metavar="KEY",
        help="SSH private key: also write FILE.sig (ssh-keygen -Y sign)",
    )
    dec.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the table"
    )
    _allow_different(dec)
    dec.set_defaults(func=cmd_decide)

    cmp = sub.add_parser("compare", help="devices (or runs) side by side")
    cmp.add_argument("runs", nargs="+", metavar="RUN")
    cmp.add_argument(
        "--by",
        choices=("device", "run"),
        default="device",
        help="columns: a device per column, or a run per column",
    )
    cmp.add_argument(
        "--reference",
        metavar="DEVICE",
        help="the column speed-ups are against (default: the first)",
    )
    cmp.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the table"
    )
    _allow_different(cmp)
    cmp.set_defaults(func=cmd_compare)

    his = sub.add_parser("history", help="p50 over runs, per machine and artifact")
    his.add_argument("--device", metavar="D", help="device name, tag or identity prefix")
    his.add_argument("--artifact", metavar="A", help="artifact name glob or sha256 prefix")
    his.add_argument("--root", metavar="DIR", help="results root (default: --store)")
    his.add_argument(
        "--threshold",
        type=_fraction,
        default=0.05,
        metavar="F",
        help="mark steps larger than this fraction (default 0.05 = 5%%)",
    )
    his.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the table"
    )
    _allow_different(his)
    his.set_defaults(func=cmd_history)

    sto = sub.add_parser("store", help="the shared store: import runs, name a run, get a file")
    acts = sto.add_subparsers(dest="action", required=True)
    imp = acts.add_parser("import", help="copy the runs of a results directory into --store")
    imp.add_argument("dir", metavar="DIR", help="a results root or one run directory")
    nam = acts.add_parser("name", help="give a run a name that RUN arguments accept")
    nam.add_argument("name", metavar="NAME")
    nam.add_argument("run", metavar="RUN")
    get = acts.add_parser("get", help="print a file stored with a run (report.md, ...)")
    get.add_argument("run", metavar="RUN")
    get.add_argument("file", metavar="FILE")
    sto.set_defaults(func=cmd_store)
    for command in [run, rep, chk, dec, cmp, his, sto, *acts.choices.values()]:
        command.add_argument(
            "--store", default=argparse.SUPPRESS, metavar="URL|DIR", help=STORE_HELP
        )
    return p


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a CI cancel) stops a run as Ctrl-C does


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    from .analysis.sign import SignError
    from .config import ConfigError
    from .store import StoreError

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return int(args.func(args))
    except (ConfigError, StoreError, SignError, UsageError) as exc:
        print("edgebench: error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgebench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgebench ... | head`: the reader left, nothing to say
        sys.stderr.close()
        return 0
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
