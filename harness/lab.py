"""``edgebench lab``: the boards the store has seen, one row each.

A board is a device identity (analysis/identity.py), whatever devices.yaml called it.  Its
row: the machine, the names it had, when it was last measured and in which run, its last
fingerprint (runtimes, governor, power mode, kernel), its health -- what its last run says:
``ok``, ``failing`` (the model or the settings failed) or ``unknown`` (an infrastructure
fault such as an unreachable board, until a later run succeeds; LAVA's rule) -- and who
holds its lease now: asked of the board's own agent over the device's transport, for boards
that devices.yaml still names.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence

from edgebench.agent.record import REASONS, Record

from .analysis.history import Point, machine_label, series
from .analysis.history import entries as run_index
from .analysis.identity import device_identity
from .config import Device
from .devices import ask_agent
from .formatting import print_table
from .run.pack import build, default_cache
from .store import Store

LEASE_TIMEOUT_S = 60.0
NOT_ASKED = "not asked"


@dataclass(frozen=True)
class Board:
    identity: str
    machine: str
    devices: List[str]  # the names it was measured under, last one last
    last_seen: str
    last_run: str
    runtimes: str = ""
    governor: str = ""
    power_mode: str = ""
    kernel: str = ""
    agent_version: str = ""
    health: str = ""
    health_detail: str = ""
    lease: Optional[Dict[str, Any]] = None  # held, holder; or error, message; None: not read


def power_mode(fingerprint: Mapping[str, Any]) -> str:
    """Jetson's nvpmodel mode (and whether its clocks are locked); "" elsewhere."""
    jetson = (fingerprint.get("board") or {}).get("jetson") or {}
    mode = (jetson.get("nvpmodel") or {}).get("mode")
    clocks = jetson.get("clocks") or {}
    if not mode:
        return ""
    return "%s%s" % (mode, ", clocks locked" if clocks.get("locked") else "")


def health(points: Sequence[Point]) -> List[str]:
    """``[verdict, detail]`` from the board's points of its last run."""
    failed = [p for p in points if p.p50_ms is None]
    if not failed:
        return ["ok", ""]
    reasons = sorted({str(p.reason) for p in failed})
    infra = any(REASONS.get(r) == "infrastructure" for r in reasons)
    return [
        "unknown" if infra else "failing",
        "%d of %d failed: %s" % (len(failed), len(points), ", ".join(reasons)),
    ]


def boards(store: Store) -> List[Board]:
    """Every board in the runs of ``store``, the most recently seen first."""
    entries = run_index(store)
    by_board: Dict[str, List[Point]] = {}
    for (identity, _), points in series(entries).items():
        if identity:
            by_board.setdefault(identity, []).extend(points)
    out = []
    for identity, points in by_board.items():
        points.sort(key=lambda p: (p.created_at, p.run_id))
        last = points[-1]
        names = list(dict.fromkeys(p.device for p in points))
        names.remove(last.device)
        verdict, detail = health([p for p in points if p.run_id == last.run_id])
        board = Board(
            identity=identity,
            machine=machine_label(entries, identity),
            devices=names + [last.device],
            last_seen=last.created_at,
            last_run=last.run_id,
            health=verdict,
            health_detail=detail,
        )
        measured = [p for p in points if p.p50_ms is not None]  # these carry a fingerprint
        out.append(_fingerprint(board, store, measured[-1].run_id) if measured else board)
    return sorted(out, key=lambda b: (b.last_seen, b.identity), reverse=True)


def _fingerprint(board: Board, store: Store, run_id: str) -> Board:
    """``board`` with the fingerprint its records in run ``run_id`` carry."""
    records = [r for r in store.open(run_id).records() if device_identity(r) == board.identity]
    if not records:
        return board
    latest: Record = max(records, key=lambda r: r.finished_at or r.started_at)
    fp = latest.fingerprint
    runtimes = {
        "%s %s" % (r.runtime.get("name"), r.runtime.get("version") or "?")
        for r in records
        if r.runtime.get("name")
    }
    return replace(
        board,
        runtimes=", ".join(sorted(runtimes)),
        governor=str(fp.get("governor") or ""),
        power_mode=power_mode(fp),
        kernel=str(fp.get("kernel") or ""),
        agent_version=str(fp.get("agent_version") or ""),
    )


def with_leases(found: Sequence[Board], devices: Sequence[Device]) -> List[Board]:
    """``found`` with each board's lease, asked of the inventory device that last measured
    it; a board devices.yaml no longer names keeps ``not asked``."""
    by_name = {d.name: d for d in devices}
    owner: Dict[str, Board] = {}  # device name -> the board last seen under it
    for board in found:
        name = board.devices[-1]
        if name in by_name and (name not in owner or owner[name].last_seen < board.last_seen):
            owner[name] = board
    asked = {b.identity: by_name[name] for name, b in owner.items()}
    if not asked:
        return [replace(b, lease={"error": NOT_ASKED}) for b in found]
    agent_zip = build(default_cache())
    with ThreadPoolExecutor(max_workers=len(asked)) as pool:
        answers = dict(
            zip(
                asked,
                pool.map(
                    lambda d: ask_agent(
                        d, agent_zip, "lease", {"workdir": d.workdir}, LEASE_TIMEOUT_S
                    ),
                    asked.values(),
                ),
            )
        )
    return [replace(b, lease=answers.get(b.identity, {"error": NOT_ASKED})) for b in found]


def lease_text(lease: Mapping[str, Any]) -> str:
    if "error" in lease:
        return (
            lease["error"]
            if lease["error"] == NOT_ASKED
            else "%s: %s"
            % (
                lease["error"],
                lease.get("message", ""),
            )
        )
    return "held by %s" % lease["holder"] if lease.get("held") else "free"


def show(found: Sequence[Board]) -> None:
    leases = any(b.lease is not None for b in found)
    headers = ["Board", "Machine", "Devices", "Last seen", "Runtimes", "Governor", "Power"]
    headers += ["Health"] + (["Lease"] if leases else [])
    rows = [
        [
            b.identity,
            b.machine.rsplit(" (id ", 1)[0],
            ", ".join(b.devices),
            "%s (%s)" % (b.last_seen, b.last_run),
            b.runtimes,
            b.governor,
            b.power_mode,
            b.health + (": %s" % b.health_detail if b.health_detail else ""),
        ]
        + ([lease_text(b.lease or {})] if leases else [])
        for b in found
    ]
    print_table(headers, rows, {"ok": "green", "free": "green"})


def as_json(found: Sequence[Board]) -> List[Dict[str, Any]]:
    return [asdict(b) for b in found]
