"""Agent entry point: ``python3 -m agent {run,probe,lease}`` or ``python3 <agent>.pyz``.

``run`` reads one job (JSON) from stdin or ``--job FILE`` and writes one result document to
stdout.  Everything else -- our logs, and whatever native runtimes print -- goes to stderr:
file descriptor 1 is pointed at stderr for the whole process, and the document is written
to a private duplicate of the original stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence

from . import __version__
from .protocol import PROTOCOL_VERSION


def _claim_stdout() -> Any:
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _run(job_text: str) -> Dict[str, Any]:
    from .faults import Fault
    from .protocol import JobError, artifact_stub, job_device, parse_job
    from .record import error_record

    try:
        doc = json.loads(job_text)
    except ValueError as exc:
        doc = None
        record = error_record(
            "local", {"name": "<unknown>"}, "job-invalid", "the job is not valid JSON: %s" % exc
        )
    if doc is not None:
        try:
            job = parse_job(doc)
        except (JobError, Fault) as exc:
            record = error_record(job_device(doc), artifact_stub(doc), "job-invalid", str(exc))
        else:
            record = _leased_run(job)
    return {
        "protocol": PROTOCOL_VERSION,
        "agent_version": __version__,
        "kind": "record",
        "record": record.to_dict(),
    }


def _leased_run(job: Any) -> Any:
    """Benchmark under the board's lease when the job names one; waiting too long is a
    ``device-busy`` record.  The inputs are verified right before: a file that is not what
    was sent is a ``transfer-failed`` record, never a measurement."""
    from contextlib import nullcontext

    from .bench import run
    from .faults import Fault
    from .lease import acquire
    from .record import error_record
    from .verify import check

    try:
        with (
            nullcontext()
            if job.lease is None
            else acquire(job.lease["workdir"], job.lease["owner"], job.lease["timeout_s"])
        ):
            check(str(job.artifact["path"]), job.artifact.get("sha256"), "model")
            if job.eval_path:
                check(job.eval_path, job.eval_sha256, "eval set")
            return run(job)
    except Fault as fault:
        return error_record(job.device, job.artifact, fault.reason, fault.message)


def _probe(job_text: Optional[str]) -> Dict[str, Any]:
    from .probe import probe

    doc = json.loads(job_text) if job_text and job_text.strip() else {}
    return {
        "protocol": PROTOCOL_VERSION,
        "agent_version": __version__,
        "kind": "probe",
        "probe": probe(doc if isinstance(doc, dict) else {}),
    }


def _lease(job_text: Optional[str]) -> Dict[str, Any]:
    """Who holds the board's lease now: ``{"held": bool, "holder": str or None}``."""
    from .lease import holder

    who = holder(str(json.loads(job_text or "{}")["workdir"]))  # the harness's job
    return {
        "protocol": PROTOCOL_VERSION,
        "agent_version": __version__,
        "kind": "lease",
        "lease": {"held": who is not None, "holder": who},
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="edgebench-agent")
    parser.add_argument("command", choices=("run", "probe", "lease", "version"))
    parser.add_argument("--job", help="read the job from this file instead of stdin")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(json.dumps({"agent_version": __version__, "protocol": PROTOCOL_VERSION}))
        return 0
    out = _claim_stdout()
    if args.job:
        with open(args.job) as fh:
            text = fh.read()
    else:
        text = sys.stdin.read()
    commands = {"run": _run, "probe": _probe, "lease": _lease}
    result = commands[args.command](text)
    out.write(json.dumps(result, allow_nan=False))
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
