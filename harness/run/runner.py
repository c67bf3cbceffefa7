"""Plan -> transport -> agent -> record -> store, for every selected device.

Devices run concurrently (one worker thread each); on one device the artifacts run one
after another, never two benchmarks at once on a board, each in ``rounds`` fresh agent
processes interleaved across the artifacts.  Every finished record is stored the moment
its last round arrives, so Ctrl-C or a failing device loses nothing already measured.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from edgebench.agent.faults import Fault
from edgebench.agent.protocol import (
    FORMATS,
    PROTOCOL_VERSION,
    JobError,
    parse_settings,
    stronger_demand,
)
from edgebench.agent.record import Record, error_record
from edgebench.agent.verify import sha256_file

from ..clock import utc_now
from ..config import ConfigError, Device
from ..store import Run, StoreError
from ..transport import make_transport
from ..transport.base import Transport, interpret, printable
from . import coldstart
from .pack import default_cache
from .pipeline import PipelineSpec, Shipment
from .rounds import merge

# (device, artifact, kind, payload); kind: queued, start, upload, progress, log, done
Event = Callable[[str, str, str, Any], None]
# How long an agent waits for another benchmark on its board to finish (agent/lease.py):
# at most this, and at most half the device's deadline, which covers the wait too.
LEASE_TIMEOUT_S = 300.0
# Staging faults that concern one file: the next artifact still gets its own attempt.
FILE_FAULTS = ("disk-full", "transfer-failed")
# The name of an A/B baseline artifact: its candidate's slot and this (run/ab.py).
BASELINE_SUFFIX = "@baseline"
# what the board holds besides the artifact: {"eval": path, "pipeline": job section}
Inputs = Dict[str, Any]


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size_bytes: int
    format: str
    variant: Optional[str] = None  # e.g. "int8-static", for artifacts `optimize` built
    parent_sha256: Optional[str] = None  # the model the variant was built from
    baseline_of: Optional[str] = None  # A/B (run/ab.py): the candidate slot it is measured for
    stored: bool = False  # not on this host: the board's copy by sha256 (Transport.stored)

    @property
    def name(self) -> str:
        return self.baseline_of + BASELINE_SUFFIX if self.baseline_of else self.path.name

    @classmethod
    def from_path(cls, path: Path) -> Artifact:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(
                "%s: unknown model format %r (expected %s)"
                % (path, path.suffix, " or ".join(sorted(FORMATS)))
            )
        if path.is_dir():
            raise ConfigError("%s: is a directory, not a model file" % path)
        if not path.is_file():
            raise ConfigError("%s: model file not found" % path)
        try:
            return cls(path, sha256_file(path), path.stat().st_size, fmt)
        except OSError as exc:
            raise ConfigError(
                "%s: cannot read the model (%s)" % (path, exc.strerror or exc)
            ) from None

    def identity(self) -> Dict[str, Any]:
        ident: Dict[str, Any] = {
            "name": self.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "format": self.format,
        }
        if self.variant:
            ident["variant"] = self.variant
            ident["parent_sha256"] = self.parent_sha256
        if self.baseline_of:
            ident["baseline_of"] = self.baseline_of
        return ident


@dataclass(frozen=True)
class Request:
    """What to measure: the same for every device."""

    artifacts: Tuple[Artifact, ...]
    eval_path: Optional[Path] = None
    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)  # agent Settings overrides
    # a plan's demand (true, false or "full"), on top of each device's own
    require_accelerator: Union[bool, str] = False
    pipeline: Optional[PipelineSpec] = None  # a plan's on-device pre/post-processing

    def describe(self) -> Dict[str, Any]:
        return {
            "artifacts": [
                dict(a.identity(), path=str(a.path), **({"stored": True} if a.stored else {}))
                for a in self.artifacts
            ],
            "eval": str(self.eval_path) if self.eval_path else None,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "settings": dict(self.settings),
            "require_accelerator": self.require_accelerator,
            **({"pipeline": self.pipeline.describe()} if self.pipeline else {}),
        }

    @classmethod
    def from_description(cls, desc: Any, source: Path) -> Request:
        """The request a stored run made (``source``: its run.json); refuses files that
        changed since, and a request that is not one."""
        try:
            request = cls._from_description(desc)
            parse_settings(request.settings)
        except (JobError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                "%s: cannot resume, the stored request is damaged (%s)"
                % (source, " ".join(str(exc).split()))
            ) from None
        return request

    @classmethod
    def _from_description(cls, desc: Mapping[str, Any]) -> Request:
        artifacts = []
        for item in desc.get("artifacts", []):
            if item.get("stored"):  # on the boards only: they check it by sha256
                artifact = Artifact(
                    Path(item["path"]), item["sha256"], item["size_bytes"], item["format"]
                )
            else:
                artifact = Artifact.from_path(Path(item["path"]))
            if artifact.sha256 != item["sha256"]:
                raise ConfigError(
                    "%s: changed since the run measured it (sha256 differs)" % item["path"]
                )
            artifacts.append(
                dataclasses.replace(
                    artifact,
                    variant=item.get("variant"),
                    parent_sha256=item.get("parent_sha256"),
                    baseline_of=item.get("baseline_of"),
                    stored=bool(item.get("stored")),
                )
            )
        eval_path = Path(desc["eval"]) if desc.get("eval") else None
        if eval_path is not None and not eval_path.is_file():
            raise ConfigError("%s: eval set not found" % eval_path)
        return cls(
            tuple(artifacts),
            eval_path,
            dict(desc.get("input_shapes") or {}),
            dict(desc.get("settings") or {}),
            desc.get("require_accelerator") or False,
            PipelineSpec.from_description(desc["pipeline"]) if desc.get("pipeline") else None,
        )


def unfinished(store: Run) -> Dict[str, List[str]]:
    """Per device, the artifacts a resumed run must measure: never measured, or failed for
    an infrastructure reason (link, board, timeout) that another try may not meet."""
    done = {
        (r.device, r.artifact["name"])
        for r in store.records()
        if r.ok or r.fault_class != "infrastructure"
    }
    status = store.meta().status
    return {device: [a for a in arts if (device, a) not in done] for device, arts in status.items()}


class Runner:
    def __init__(
        self,
        store: Run,
        request: Request,
        devices: Sequence[Device],
        agent_zip: Path,
        on_event: Optional[Event] = None,
        todo: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> None:
        """``todo`` limits each device to the named artifacts (``--resume``)."""
        self.todo = todo
        # hashed once here, not once per device thread: eval sets can be large
        self._eval_sha256 = sha256_file(request.eval_path) if request.eval_path else ""
        self._pipeline = Shipment(request.pipeline, default_cache()) if request.pipeline else None
        self._owner = "%s@%s" % (getpass.getuser(), socket.gethostname())
        self.store = store
        self.request = request
        self.devices = list(devices)
        self.agent_zip = agent_zip
        self.on_event = on_event or (lambda *args: None)
        self.interrupted = False
        self.unsaved: List[str] = []  # why records could not be written, one line each
        self._measured: Dict[Tuple[str, str], Record] = {}  # this run's, kept in memory
        self._transports: Dict[str, Transport] = {}
        self._cancel = threading.Event()

    def _job(
        self, device: Device, artifact: Artifact, staged: str, inputs: Inputs, cold: bool
    ) -> Dict[str, Any]:
        """The job of one agent process; a ``cold`` one only times a cold start."""
        settings = dict(self.request.settings)
        return {
            "protocol": PROTOCOL_VERSION,
            "device": device.name,
            "artifact": dict(artifact.identity(), path=staged),
            "eval": None if cold else inputs["eval"],
            "eval_sha256": None if cold else self._eval_sha256 or None,
            "pipeline": None if cold else inputs["pipeline"],
            "input_shapes": {k: list(v) for k, v in self.request.input_shapes.items()},
            "settings": coldstart.cold_settings(settings) if cold else settings,
            "onnx": device.onnx.to_dict(),
            "tflite": device.tflite.to_dict(),
            "require_accelerator": stronger_demand(
                device.require_accelerator, self.request.require_accelerator
            ),
            "cooldown": device.cooldown.to_dict() if device.cooldown else None,
            "throttle_temp_c": device.throttle_temp_c,
            "lease": {
                "workdir": device.workdir,
                "timeout_s": min(LEASE_TIMEOUT_S, device.timeout_s / 2),
                "owner": "%s run %s" % (self._owner, self.store.run_id),
            },
        }

    def _store(self, record: Record) -> None:
        """Keep the record in memory, then on disk; a disk that refuses it (full, read-only)
        costs the file, not the measurement, and the run says so."""
        self._measured[(record.device, str(record.artifact["name"]))] = record
        try:
            self.store.write_record(record)
            self.store.set_status(
                record.device,
                record.artifact["name"],
                "ok" if record.ok else "error:%s" % record.reason,
            )
        except StoreError as exc:
            self.note_unsaved(exc)
        self.on_event(record.device, record.artifact["name"], "done", record)

    def note_unsaved(self, exc: StoreError) -> None:
        self.unsaved.append("results not saved: %s" % exc)

    def _pending(self, device: Device) -> List[Artifact]:
        return [
            a
            for a in self.request.artifacts
            if self.todo is None or a.name in self.todo.get(device.name, ())
        ]

    def _device(self, device: Device) -> None:
        """Every round of every pending artifact, interleaved and counterbalanced (A B C,
        C B A, A B C ...) so drift hits all alike, a steady trend included; an artifact's
        record is stored once its last round is done."""
        transport = self._transports[device.name]
        pending = self._pending(device)
        if not pending:
            return
        rounds = int(self.request.settings.get("rounds") or 1)
        total = rounds + coldstart.extra(self.request.settings)  # then the cold starts
        measured: Dict[str, List[Record]] = {a.name: [] for a in pending}
        try:
            transport.deploy(self.agent_zip)
            inputs = self._stage_inputs(transport)
            for number in range(1, total + 1):
                for artifact in pending[:: 1 if number % 2 else -1]:
                    if self._cancel.is_set():
                        return
                    self.on_event(
                        device.name,
                        artifact.name,
                        "start",
                        coldstart.progress_label(number, rounds, total),
                    )
                    record, inputs = self._round(
                        transport, device, artifact, inputs, number > rounds
                    )
                    if record.reason == "interrupted":
                        return
                    measured[artifact.name].append(record)
                    if number == total:
                        pending.remove(artifact)
                        self._store(self._merged(measured[artifact.name], rounds))
        except Fault as fault:
            failure: Optional[Tuple[str, str]] = (fault.reason, fault.message)
        except Exception as exc:  # a fault of ours or of this host: a record, not a dead thread
            failure = ("internal", "%s: %s" % (type(exc).__name__, exc))
        else:
            failure = None
        finally:
            transport.close()
        if failure is not None:
            for artifact in pending:  # the device failed: each missing round says why
                lost = error_record(device.name, artifact.identity(), *failure)
                done = measured[artifact.name]
                self._store(self._merged(done + [lost] * (total - len(done)), rounds))

    def _merged(self, records: List[Record], rounds: int) -> Record:
        """One record of an artifact's processes: the rounds merged, the cold starts of all
        when more than one was asked for."""
        record = merge(records[:rounds])
        if int(self.request.settings.get("cold_starts") or 1) > 1:
            record = coldstart.attach(record, records[:rounds], records[rounds:])
        return record

    def _stage_inputs(self, transport: Transport) -> Inputs:
        """The eval set's path and the pipeline's job section on the board."""
        return {
            "eval": transport.stage(self.request.eval_path, self._eval_sha256)
            if self.request.eval_path is not None
            else None,
            "pipeline": self._pipeline.stage(transport) if self._pipeline else None,
        }

    def _round(
        self, transport: Transport, device: Device, artifact: Artifact, inputs: Inputs, cold: bool
    ) -> Tuple[Record, Inputs]:
        """One agent process on ``artifact``, and the inputs as staged (restaged when the
        board's copy changed)."""
        try:
            record = self._measure(transport, device, artifact, inputs, cold)
            if record.reason == "transfer-failed":  # changed on the board since it
                transport.deploy(self.agent_zip)  # was checked: send what differs,
                inputs = self._stage_inputs(transport)  # once more
                record = self._measure(transport, device, artifact, inputs, cold)
        except Fault as fault:
            if fault.reason not in FILE_FAULTS:
                raise
            record = error_record(device.name, artifact.identity(), fault.reason, fault.message)
        return record, inputs

    def _worker(self, device: Device, done: threading.Event) -> None:
        try:
            self._device(device)
        finally:
            done.set()

    def _measure(
        self, transport: Transport, device: Device, artifact: Artifact, inputs: Inputs, cold: bool
    ) -> Record:
        """Stage one artifact (the board checks what it has) and run the agent on it."""
        if artifact.stored:
            staged = transport.stored(artifact.path, artifact.sha256, artifact.size_bytes)
        else:
            staged = transport.stage(
                artifact.path,
                artifact.sha256,
                lambda sent, total: self.on_event(
                    device.name, artifact.name, "upload", (sent, total)
                ),
            )
        outcome = transport.run_agent(
            "run",
            self._job(device, artifact, staged, inputs, cold),
            device.timeout_s,
            lambda line: self._stderr(device.name, artifact.name, line),
        )
        return interpret(outcome, device.name, artifact.identity(), device.timeout_s)

    def _stderr(self, device: str, artifact: str, line: str) -> None:
        if line.startswith("@progress "):
            try:
                self.on_event(device, artifact, "progress", printable(json.loads(line[10:])))
            except ValueError:
                pass
        else:
            self.on_event(device, artifact, "log", line)

    def run(self) -> List[Record]:
        """Measure everything; on Ctrl-C stop the agents and keep what finished."""
        for device in self.devices:
            self._transports[device.name] = make_transport(device)
            for artifact in self._pending(device):  # all jobs are known before any starts
                self.on_event(device.name, artifact.name, "queued", None)
        # Waiting is on events, never on Thread.join: a KeyboardInterrupt (Ctrl-C, SIGTERM)
        # raised inside join() can mark a live thread finished, and the exit would then
        # leave its agent running.
        done = [threading.Event() for _ in self.devices]
        for device, event in zip(self.devices, done):
            threading.Thread(
                target=self._worker, args=(device, event), name="device-" + device.name, daemon=True
            ).start()
        try:
            for event in done:
                while not event.wait(0.2):
                    pass
        except KeyboardInterrupt:
            self.interrupted = True
            self._cancel.set()
            for transport in self._transports.values():
                transport.cancel()
            for event in done:
                event.wait(30)
        try:
            self.store.update_meta(
                bytes_sent={n: t.bytes_sent for n, t in self._transports.items()},
                interrupted=self.interrupted,
                finished_at=utc_now(),
            )
        except StoreError as exc:
            self.note_unsaved(exc)
        records = {(r.device, str(r.artifact["name"])): r for r in self.store.records()}
        records.update(self._measured)
        return [records[key] for key in sorted(records)]
