"""Stored runs built from real Records on synthetic samples, for the gate, decide, compare,
history and HTML tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from edgebench.agent.record import Record, error_record
from edgebench.agent.stats import summarize
from edgebench.harness.store import RunStore

# A run as edgebench wrote it with records of schema version 1 (tests/fixtures/README.md)
V1_RUN = Path(__file__).parent / "fixtures" / "runs-v1" / "20261201-010556-32ee"

FINGERPRINT = {
    "hostname": "pi4-lab",
    "arch": "aarch64",
    "board_model": "Raspberry Pi 4",
    "cpu_model": "Cortex-A72",
    "python": "3.11.2",
    "numpy": "1.26.4",
    "temps_c_before": {"cpu-thermal": 45.0},
    "temps_c_after": {"cpu-thermal": 52.5},
}


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def samples(p50_ms: float, n: int = 200, spread: float = 0.02, seed: int = 0) -> List[int]:
    """``n`` latencies (ns) around ``p50_ms`` with a relative spread."""
    rng = np.random.default_rng(seed)
    values = rng.normal(p50_ms * 1e6, p50_ms * 1e6 * spread, n)
    return [max(1, int(v)) for v in values]


def ok(
    name: str,
    device: str = "pi4",
    p50_ms: float = 10.0,
    top1: Optional[float] = 0.9,
    size_bytes: int = 4_000_000,
    variant: Optional[str] = None,
    parent: Optional[str] = None,
    n: int = 200,
    seed: int = 0,
    rss_mb: float = 80.0,
    fingerprint: Mapping[str, Any] = FINGERPRINT,
    started_at: str = "",
    sample_ns: Optional[Sequence[int]] = None,
    digest: Optional[str] = None,
) -> Record:
    """An ok record; ``parent`` names the artifact this variant was built from."""
    artifact: Dict[str, Any] = {
        "name": name,
        "sha256": digest or sha(name),
        "size_bytes": size_bytes,
        "format": name.rsplit(".", 1)[-1],
    }
    if variant:
        artifact.update(variant=variant, parent_sha256=sha(parent) if parent else None)
    data = list(sample_ns) if sample_ns is not None else samples(p50_ms, n, seed=seed)
    return Record(
        status="ok",
        device=device,
        artifact=artifact,
        runtime={"name": "onnxruntime", "version": "1.17.1"},
        samples_ns=data,
        stats=summarize(data),
        memory={
            "peak_rss_mb": rss_mb,
            "rss_after_import_mb": 40.0,
            "rss_after_load_mb": 60.0,
            "series": [[0.05 * i, 60.0 + (i % 7)] for i in range(40)],
        },
        accuracy={"top1": top1, "top5": 0.99} if top1 is not None else {},
        fingerprint=fingerprint,
        started_at=started_at,
    )


def failed(
    name: str, device: str = "pi4", reason: str = "timeout", message: str = "no result in 600 s"
) -> Record:
    return error_record(
        device, {"name": name, "sha256": sha(name), "size_bytes": 1000}, reason, message
    )


def make_run(
    root: Path,
    records: Iterable[Record],
    tags: Optional[Mapping[str, Sequence[str]]] = None,
    pending: Optional[Mapping[str, Sequence[str]]] = None,
    created_at: str = "2026-01-01T00:00:00+00:00",
) -> RunStore:
    """A run directory holding ``records``; ``tags`` per device, ``pending`` lists jobs that
    run.json shows as never finished."""
    records = list(records)
    store = RunStore.create(root)
    status: Dict[str, Dict[str, str]] = {}
    for r in records:
        status.setdefault(r.device, {})[str(r.artifact["name"])] = (
            "ok" if r.ok else "error:%s" % r.reason
        )
    for device, names in (pending or {}).items():
        status.setdefault(device, {}).update(dict.fromkeys(names, "pending"))
    store.update_meta(
        created_at=created_at,
        status=status,
        devices={d: {"kind": "ssh", "tags": list((tags or {}).get(d, []))} for d in status},
    )
    for r in records:
        store.write_record(r)
    return store
