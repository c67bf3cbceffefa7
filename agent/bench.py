"""One benchmark: import, load, first inference, warm-up, timed window, accuracy pass."""

from __future__ import annotations

import datetime
import json
import sys
import time
from array import array
from typing import Any, Callable, Dict, Optional, Tuple

from . import idle, memory
from .board import boards, fingerprint, power, validity
from .faults import Fault
from .protocol import Job
from .record import Record, error_record
from .stats import MIN_SAMPLES, precision, summarize

perf_ns = time.perf_counter_ns


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def log(message: str) -> None:
    sys.stderr.write("edgebench-agent: %s\n" % message)
    sys.stderr.flush()


def progress(phase: str, **fields: Any) -> None:
    """Machine-readable progress for the harness's live display (one line on stderr)."""
    fields["phase"] = phase
    sys.stderr.write("@progress %s\n" % json.dumps(fields))
    sys.stderr.flush()


def _backend(fmt: str) -> Any:
    try:
        if fmt == "onnx":
            from .runtimes import onnx

            return onnx
        from .runtimes import tflite

        return tflite
    except ImportError as exc:  # numpy itself is missing on the board
        raise Fault(
            "runtime-missing", "cannot import what the %s backend needs: %s" % (fmt, exc)
        ) from None


def _feeds(model: Any, job: Job, eval_set: Any) -> Tuple[Dict[str, Any], Tuple[int, ...]]:
    """Timed inputs: the first eval batch when there is an eval set, else seeded data."""
    import numpy as np

    from .tensors import fit_layout, generated, quantize, resolve_shape

    names = [spec.name for spec in model.inputs]
    unknown = sorted(set(job.input_shapes) - set(names))
    if unknown:
        raise Fault(
            "input-shape",
            "input shapes were given for %s, which the model does not "
            "have (its inputs: %s)" % (", ".join(map(repr, unknown)), ", ".join(map(repr, names))),
        )
    rng = np.random.default_rng(job.settings.seed)
    feeds = {}
    shapes = {spec.name: resolve_shape(spec, job.input_shapes) for spec in model.inputs}
    for spec in model.inputs:
        shape = shapes[spec.name]
        if eval_set is not None:
            data, _ = fit_layout(np.asarray(eval_set["inputs"]), shape, spec.name)
            data = np.resize(data[: shape[0]], shape)  # repeat samples if the set is small
            feeds[spec.name] = quantize(
                data.astype(np.float32) if data.dtype.kind == "f" else data, spec
            )
        else:
            feeds[spec.name] = generated(spec, shape, rng)
    return feeds, shapes[model.inputs[0].name]


def _warmup(call: Callable[[], Any], min_n: int, min_s: float, max_s: float) -> int:
    """Call until both ``min_n`` calls and ``min_s`` seconds are done (or ``max_s``)."""
    count = 0
    start = perf_ns()
    min_ns, max_ns = int(min_s * 1e9), int(max_s * 1e9)
    while count < min_n or perf_ns() - start < min_ns:
        if perf_ns() - start >= max_ns:
            break
        call()
        count += 1
    return count


def _measure(
    call: Callable[[], Any],
    buf: array[int],
    min_n: int,
    min_s: float,
    max_s: float,
    target: Optional[float] = None,
) -> Tuple[int, str]:
    """Time ``call`` into ``buf`` until both ``min_n`` and ``min_s`` are met -- and, with a
    ``target`` precision, until the p50's 95% interval is that narrow -- or ``max_s`` has
    passed or ``buf`` is full; returns the number of samples and the rule that stopped.
    ``buf`` is allocated beforehand so the peak-RSS window does not see the sample storage
    grow.  The precision is checked between calls, at sample counts 20% apart, so its
    sorting costs O(n log n) in all and never lands inside a timed call."""
    min_ns, max_ns = int(min_s * 1e9), int(max_s * 1e9)
    cap = len(buf)
    i = 0
    check = max(min_n, MIN_SAMPLES)
    start = perf_ns()
    while i < cap:
        t0 = perf_ns()
        call()
        t1 = perf_ns()
        buf[i] = t1 - t0
        i += 1
        elapsed = t1 - start
        if i >= min_n and elapsed >= min_ns:
            if target is None:
                return i, "min_iterations+min_seconds"
            if i >= check:
                if precision(sorted(buf[:i])) <= target:
                    return i, "target_precision"
                check = i + max(1, i // 5)
        if elapsed >= max_ns:
            return i, "max_seconds"
    return i, "max_iterations"


def timer_overhead_ns(rounds: int = 2000) -> float:
    """Median cost of one pair of clock reads: the floor under every sample."""
    diffs = []
    for _ in range(rounds):
        t0 = perf_ns()
        diffs.append(perf_ns() - t0)
    diffs.sort()
    return float(diffs[len(diffs) // 2])


TEGRASTATS_INTERVAL_MS = 100
POWER_INTERVAL_MS = 50.0


def run(job: Job) -> Record:
    """Benchmark the job's artifact; faults come back as error records."""
    started = now()
    cooled = None
    if job.cooldown:
        progress("cooldown", max_temp_c=job.cooldown["max_temp_c"])
        cooled = validity.cooldown(job.cooldown["max_temp_c"], job.cooldown["timeout_s"])
        if cooled.get("cooled") is False:
            log(
                "still %.1f °C after %.0f s of cooldown; measuring anyway (flagged)"
                % (cooled["end_temp_c"], cooled["waited_s"])
            )
    phases = memory.Phases()
    memory.reset_peak()
    phases.mark("before_import")
    fp = fingerprint.static()
    fp.update(fingerprint.state())
    fp["board"] = boards.probe(fp.get("board_model"))
    if cooled is not None:
        fp["cooldown"] = cooled
    fp["temps_c_before"] = fingerprint.temperatures_c()
    base: Dict[str, Any] = {
        "device": job.device,
        "artifact": dict(job.artifact),
        "settings": job.settings.to_dict(),
        "started_at": started,
    }
    runtime: Dict[str, Any] = {}

    def failed(reason: str, message: str) -> Record:
        return error_record(
            reason=reason,
            message=message,
            runtime=runtime,
            fingerprint=fp,
            validity={"warnings": validity.board_warnings(fp)},
            finished_at=now(),
            **base,
        )

    try:
        backend = _backend(job.format)
        progress("import", runtime=job.format)
        t0 = perf_ns()
        module = backend.import_runtime(job)
        import_ns = perf_ns() - t0
        phases.mark("after_import")
        progress("load")
        t0 = perf_ns()
        model = backend.load(module, job)
        load_ns = perf_ns() - t0
        runtime = model.runtime
        fp["runtimes"] = {runtime["name"]: runtime["version"]}
        phases.mark("after_load")

        eval_set = None
        if job.eval_path:
            from .tensors import load_eval

            eval_set = load_eval(job.eval_path)
            if len(model.inputs) != 1:
                raise Fault(
                    "input-invalid",
                    "eval sets need a single-input model; this "
                    "one has %d inputs" % len(model.inputs),
                )
        feeds, shape = _feeds(model, job, eval_set)
        if eval_set is not None:  # what would only fail after the timed window, now
            from .accuracy import check_eval

            check_eval(model, eval_set)
        pipe = None
        if job.pipeline is not None:  # loaded and tried once, before the timed window
            from .pipeline import Pipeline

            pipe = Pipeline(job.pipeline, model)
            pipe.check()
        call = model.prepare(feeds)
        s = job.settings
        buf = array("q", bytes(8 * s.max_iterations))
        overhead = timer_overhead_ns()
        window = validity.Window()
        # board samplers (threads that sleep between reads; tegrastats is a subprocess)
        with power.BoardSampler(POWER_INTERVAL_MS) as board, power.Tegrastats(
            TEGRASTATS_INTERVAL_MS, boards.which("tegrastats")
        ) as tegra:
            reset_ok = memory.reset_peak()
            with memory.Sampler(s.memory_interval_ms) as sampler:
                t0 = perf_ns()
                call()
                first_ns = perf_ns() - t0
                if hasattr(model, "after_first"):
                    model.after_first()
                progress("warmup")
                w0 = perf_ns()
                warm = _warmup(call, s.warmup_iterations, s.warmup_seconds, s.max_seconds)
                warm_ns = perf_ns() - w0
                window.begin()
                progress("measure", min_iterations=s.min_iterations, min_seconds=s.min_seconds)
                m0 = perf_ns()
                n, stopped_by = _measure(
                    call, buf, s.min_iterations, s.min_seconds, s.max_seconds, s.target_precision
                )
                measure_ns = perf_ns() - m0
                window.end()
            phases.peak(reset_ok)
        samples = buf[:n].tolist()
        fp["temps_c_after"] = fingerprint.temperatures_c()
        if s.idle_gaps:  # after the timed window, like the pipeline pass
            progress("idle-gaps", gaps_s=list(s.idle_gaps))
        gaps_ns = idle.measure(call, s.idle_gaps)
        if pipe is not None:
            progress("pipeline", inputs=len(pipe.inputs))
            piped = pipe.measure(s, _measure)
    except Fault as fault:
        return failed(fault.reason, fault.message)
    except MemoryError:
        return failed("out-of-memory", "the agent ran out of memory")
    except Exception as exc:  # a runtime failing mid-inference
        return failed("inference-failed", "%s: %s" % (type(exc).__name__, exc))
    accuracy = {} if eval_set is None else _accuracy(model, shape, eval_set)
    if pipe is not None and not accuracy and pipe.labels is not None:  # judge its output
        accuracy = dict(piped["accuracy"], source="pipeline")
    mem: Dict[str, Any] = dict(phases.values)
    mem["methods"] = phases.methods
    mem["series"] = sampler.series
    batch = shape[0] if shape else 1
    stats = summarize(samples, batch, overhead)
    try:  # placement, and with profile_ops the per-op profile: after the timed window
        from .profile import after_window

        progress("profile" if s.profile_ops else "placement")
        runtime["placement"], profile = after_window(model, job, feeds, stats["p50_ms"])
    except Fault as fault:
        return failed(fault.reason, fault.message)
    timing = {
        "import_ms": import_ns / 1e6,
        "load_ms": load_ns / 1e6,
        "first_ms": first_ns / 1e6,
        "warmup_iterations": warm,
        "warmup_s": warm_ns / 1e9,
        "timer_overhead_ns": overhead,
        "measure_s": measure_ns / 1e9,
        "stopped_by": stopped_by,
        "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
    }
    if gaps_ns:
        timing["idle_gaps"] = idle.summary(s.idle_gaps, gaps_ns, stats["p50_ms"])
    if pipe is not None:
        timing["pipeline"] = piped
    verdict = _board_timing(
        timing,
        fp,
        job,
        runtime,
        stats,
        window,
        board,
        tegra,
        m0,
        m0 + measure_ns,
        n * batch,
        cooled,
    )
    return Record(
        status="ok",
        runtime=runtime,
        fingerprint=fp,
        validity=verdict,
        samples_ns=tuple(samples),
        stats=stats,
        timing=timing,
        memory=mem,
        accuracy=accuracy,
        profile=profile,
        finished_at=now(),
        **base,
    )


def _accuracy(model: Any, shape: Tuple[int, ...], eval_set: Dict[str, Any]) -> Dict[str, Any]:
    """The accuracy pass; a failure there is kept as ``accuracy["error"]`` next to the
    latency already measured, never in its place."""
    from .accuracy import evaluate

    progress("accuracy", n=len(eval_set["inputs"]))
    try:
        return evaluate(model, shape, eval_set)
    except Fault as fault:
        return {"error": "%s: %s" % (fault.reason, fault.message)}
    except Exception as exc:  # a runtime failing on an eval sample
        return {"error": "%s: %s" % (type(exc).__name__, " ".join(str(exc).split()))}


def _board_timing(
    timing: Dict[str, Any],
    fp: Dict[str, Any],
    job: Job,
    runtime: Any,
    stats: Dict[str, Any],
    window: Any,
    board: Any,
    tegra: Any,
    m0: int,
    m1: int,
    inferences: int,
    cooled: Any,
) -> Dict[str, Any]:
    """Energy, tegrastats and engine build into ``timing``; returns the validity verdict
    of an ok record."""
    if cooled is not None:
        timing["cooldown_s"] = cooled.get("waited_s")
    energy = board.energy(m0, m1) or tegra.energy(m0, m1)
    if energy is not None:
        energy["per_inference_mj"] = energy["energy_mj"] / max(1, inferences)
        timing["power"] = energy
        timing["energy_mj"] = energy["per_inference_mj"]
    board_stats = tegra.summary(m0, m1)
    if board_stats:
        timing["tegrastats"] = board_stats
    if runtime.get("name") == "onnxruntime":
        from .runtimes.onnx import engine_build_ms

        build = engine_build_ms(runtime, timing["first_ms"], stats["p50_ms"])
        if build is not None:
            timing["engine_build_ms"] = build
    peaks = [
        board.peak_temp_c(m0, m1),
        power.max_temp_c(fp.get("temps_c_after") or {}),
        power.max_temp_c((board_stats or {}).get("temps_c_max") or {}),
    ]
    peaks = [p for p in peaks if p is not None]
    peak = max(peaks) if peaks else None
    limit = validity.throttle_limit(fp["board"].get("family", "generic"), job.throttle_temp_c)
    reasons = window.reasons() + validity.temperature_reasons(peak, limit)
    verdict = validity.assess(fp, runtime, reasons, limit, cooled)
    verdict["peak_temp_c"] = peak
    if window.available:
        verdict["get_throttled"] = window.to_dict()
    return verdict
