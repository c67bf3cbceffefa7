"""Per-node times and placement from ONNX Runtime's own session profiler.

After the timed window a second session is made with the timed session's options plus
``enable_profiling``, its JSON written into a temporary folder inside the workdir and
deleted once parsed.  Each ``Node`` event's ``args.provider`` names the execution provider
that ran the node, so one profiled run gives the placement of every record -- the nodes
counted are those of the partitioned, optimised graph (fused nodes count once, and a
subgraph compiled by TensorRT or another compiling provider is one node of it).  With
``profile_ops`` the profiled session runs long enough for per-node statistics; the
events of the warm-up runs are left out by their ``model_run`` span.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Tuple

from ..profile import Node, Ops, profile_budget
from ..protocol import Job

KERNEL = "_kernel_time"


def measure(model: Any, job: Job, feeds: Dict[str, Any], profile: bool, workdir: str) -> Ops:
    """One profiled run for the placement; with ``profile`` a full per-node profile."""
    import onnxruntime as ort

    folder = tempfile.mkdtemp(prefix="ort-profile-", dir=workdir)
    try:
        opts = model.session_options
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(folder, "profile")
        try:
            session = ort.InferenceSession(
                str(job.artifact["path"]), sess_options=opts, providers=model.providers
            )
        finally:
            opts.enable_profiling = False
        warm, runs = (2, _run_for(session, feeds)) if profile else (0, 1)
        if not profile:
            session.run(None, feeds)
        path = session.end_profiling()
        with open(path) as fh:
            events = json.load(fh)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    nodes, totals = _nodes(events, warm)
    return Ops(
        nodes=nodes,
        method="onnxruntime session profiler (enable_profiling)",
        placement_method="onnxruntime session profiler: each node's provider",
        estimate=False,
        runs=runs,
        timed=profile,
        accelerator=model.runtime["accelerator"].get("requested"),
        run_totals_ms=totals,
    )


def _run_for(session: Any, feeds: Dict[str, Any]) -> int:
    """Two warm-up runs, then runs for the profile budget; returns the profiled runs."""
    for _ in range(2):
        session.run(None, feeds)
    min_runs, seconds, max_runs = profile_budget()
    runs, start = 0, time.perf_counter()
    while runs < max_runs and (runs < min_runs or time.perf_counter() - start < seconds):
        session.run(None, feeds)
        runs += 1
    return runs


def _nodes(events: List[Dict[str, Any]], warm: int) -> Tuple[List[Node], List[float]]:
    """Per node, in the order the nodes first ran: op type, provider, and the duration of
    each call after the first ``warm`` runs; and the sum of the node times of each of those
    runs."""
    spans = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    start = spans[warm][0] if warm < len(spans) else None
    totals = [0.0] * (len(spans) - warm)
    out: Dict[str, Node] = {}
    for e in sorted((e for e in events if e.get("cat") == "Node"), key=lambda e: e["ts"]):
        name = str(e.get("name", ""))
        if not name.endswith(KERNEL):
            continue
        name = name[: -len(KERNEL)]
        args = e.get("args") or {}
        node = out.get(name)
        if node is None:
            node = out[name] = Node(
                name, str(args.get("op_name", "?")), str(args.get("provider", "?"))
            )
        if start is not None and e["ts"] >= start:
            node.times_ms.append(e["dur"] / 1e3)
            run = bisect.bisect_right(spans, (e["ts"], float("inf"))) - 1 - warm
            if 0 <= run < len(totals):
                totals[run] += e["dur"] / 1e3
    return list(out.values()), totals
