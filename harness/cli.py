"""The `edgebench` command: parses arguments and dispatches; each command imports lazily.

Exit codes: 0 everything measured, 1 a measurement (or later a gate) failed, 2 unusable
input (bad devices.yaml, missing model, bad option), 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_MODELS = ("digits.onnx", "digits.tflite", "digits.int8.tflite")
EXAMPLE_EVAL = "digits_eval.npz"


class UsageError(Exception):
    """Unusable input; printed as one line, exit code 2."""


def _example() -> List[Path]:
    models = [EXAMPLES / m for m in EXAMPLE_MODELS if (EXAMPLES / m).is_file()]
    if not models:
        raise UsageError("no --model given and the bundled example is not in %s" % EXAMPLES)
    return models


def cmd_resume(args: argparse.Namespace) -> int:
    """Measure only what a stored run is missing, with the settings it was started with."""
    from .config import load_inventory
    from .pack import build, default_cache
    from .progress import Display
    from .report import markdown
    from .runner import Request, Runner, unfinished, utc_now
    from .store import open_run

    store = open_run(args.resume)
    meta = store.meta()
    request = Request.from_description(meta.get("request") or {})
    todo = unfinished(store)
    names = [device for device, artifacts in todo.items() if artifacts]
    devices = load_inventory(args.devices_file).select(",".join(names)) if names else []
    display = Display(quiet=args.quiet or args.json)
    runner = Runner(store, request, devices, build(default_cache()), display.event, todo=todo)
    store.update_meta(resumed_at=utc_now())
    with display:
        records = runner.run()
    store.write_text("report.md", markdown(store.meta(), records))
    store.mark_latest()
    return _finish(args, store, records, runner.interrupted)


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume:
        return cmd_resume(args)
    from agent.record import Record
    from .config import load_inventory, parse_input_shapes
    from .pack import build, default_cache
    from .progress import Display
    from .report import markdown
    from .runner import Artifact, Request, Runner, utc_now
    from .store import RunStore
    from .hostinfo import host_info

    inventory = load_inventory(args.devices_file)
    devices = inventory.select(args.devices)
    paths = [Path(m) for m in args.model] if args.model else _example()
    eval_path = Path(args.eval) if args.eval else (
        EXAMPLES / EXAMPLE_EVAL if not args.model else None)
    if eval_path is not None and not eval_path.is_file():
        raise UsageError("%s: eval set not found" % eval_path)
    settings = {k: getattr(args, k) for k in
                ("threads", "min_seconds", "min_iterations", "warmup_seconds",
                 "warmup_iterations", "max_seconds") if getattr(args, k) is not None}
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UsageError("two --model files share the name %r; results are keyed by file name"
                         % next(n for n in names if names.count(n) > 1))
    request = Request(artifacts=tuple(Artifact.from_path(p) for p in paths),
                      eval_path=eval_path, input_shapes=parse_input_shapes(args.input_shape),
                      settings=settings)
    store = RunStore.create(args.out)
    store.write_meta({
        "run_id": store.path.name, "created_at": utc_now(), "argv": sys.argv[1:], "tool": host_info(),
        "inventory": inventory.source, "request": request.describe(),
        "devices": {d.name: {"kind": d.kind, "host": d.host, "tags": list(d.tags)}
                    for d in devices},
        "status": {d.name: {a.name: "pending" for a in request.artifacts} for d in devices},
    })
    store.mark_latest()
    display = Display(quiet=args.quiet or args.json)
    runner = Runner(store, request, devices, build(default_cache()), display.event)
    with display:
        records = runner.run()  # type: List[Record]
    store.write_text("report.md", markdown(store.meta(), records))
    return _finish(args, store, records, runner.interrupted)


def _finish(args: argparse.Namespace, store: object, records: list, interrupted: bool) -> int:
    import json

    from .report import terminal_table
    from .summary import rows

    if args.json:
        print(json.dumps(rows(records), indent=2))
    elif not args.quiet:
        terminal_table(records)
    failed = [r for r in records if not r.ok]
    for r in failed:
        print("failed: %s / %s: %s: %s" % (r.device, r.artifact.get("name"), r.reason,
                                            r.message), file=sys.stderr)
    print("results: %s" % store.path, file=sys.stderr)  # type: ignore[attr-defined]
    if interrupted:
        print("interrupted: finished measurements are kept", file=sys.stderr)
        return 130
    return 1 if failed else 0


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
    from .report import render
    from .store import open_run

    sys.stdout.write(render(open_run(args.run_dir), args.format))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebench",
                                description="Benchmark ML models on edge devices.")
    p.add_argument("--devices-file", metavar="FILE",
                   help="device inventory (default ./devices.yaml, else only 'local')")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="benchmark models on devices")
    run.add_argument("--model", action="append", metavar="PATH",
                     help="an .onnx or .tflite file (repeatable; default: the bundled example)")
    run.add_argument("--devices", metavar="NAMES", help="comma-separated device names or tags")
    run.add_argument("--eval", metavar="FILE.npz", help="eval set with 'inputs' and 'labels'")
    run.add_argument("--threads", type=int, metavar="N", help="runtime threads")
    run.add_argument("--min-seconds", type=float, metavar="S")
    run.add_argument("--min-iterations", type=int, metavar="N")
    run.add_argument("--max-seconds", type=float, metavar="S",
                     help="cap on each timed window")
    run.add_argument("--warmup-seconds", type=float, metavar="S")
    run.add_argument("--warmup-iterations", type=int, metavar="N")
    run.add_argument("--input-shape", action="append", default=[], metavar="NAME:DIMS",
                     help="shape for an input with dynamic dimensions, e.g. input:1,3,224,224")
    run.add_argument("--out", default="results", metavar="DIR", help="results root")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="measure only what this stored run is missing (other options "
                          "come from the run)")
    run.add_argument("--quiet", action="store_true", help="no progress and no table")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(func=cmd_run)

    dev = sub.add_parser("devices", help="list the inventory, or probe the devices")
    dev.add_argument("--probe", action="store_true", help="ask each device's agent")
    dev.add_argument("--devices", metavar="NAMES", help="only these names or tags")
    dev.add_argument("--json", action="store_true")
    dev.set_defaults(func=cmd_devices)

    rep = sub.add_parser("report", help="re-render a stored run")
    rep.add_argument("run_dir", metavar="RUN_DIR")
    rep.add_argument("--format", choices=("md", "csv", "json"), default="md")
    rep.set_defaults(func=cmd_report)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    from .config import ConfigError
    from .store import StoreError

    try:
        return int(args.func(args))
    except (ConfigError, StoreError, UsageError) as exc:
        print("edgebench: error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgebench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
