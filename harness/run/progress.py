"""Live progress per device x artifact: a rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
from typing import Any, Dict, Tuple

PHASES = {
    "import": "importing runtime",
    "load": "loading model",
    "warmup": "warming up",
    "measure": "measuring",
    "accuracy": "accuracy pass",
}


class Display:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()
        self._progress: Any = None
        self._tasks: Dict[Tuple[str, str], Any] = {}
        self._quarters: Dict[Tuple[str, str], int] = {}

    def __enter__(self) -> Display:
        if not self.quiet and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            except ImportError:
                return self
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _say(self, key: Tuple[str, str], text: str, final: bool = False) -> None:
        label = "%s / %s: %s" % (key[0], key[1], text)
        if self._progress is None:
            print(label, file=sys.stderr, flush=True)
            return
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._progress.add_task(label, total=None)
        self._progress.update(task, description=label)
        if final:
            self._progress.console.print(label)
            self._progress.remove_task(task)
            del self._tasks[key]

    def event(self, device: str, artifact: str, kind: str, payload: Any) -> None:
        if self.quiet or kind == "log":
            return
        with self._lock:
            key = (device, artifact)
            if kind == "start":
                self._say(key, "starting")
            elif kind == "upload":
                sent, total = payload
                quarter = 4 * sent // total
                if self._progress is not None or self._quarters.get(key) != quarter:
                    self._quarters[key] = quarter  # plain lines: one per 25%, not per MiB
                    self._say(
                        key, "uploading %.0f%% of %.1f MB" % (100.0 * sent / total, total / 1e6)
                    )
            elif kind == "progress":
                self._say(key, PHASES.get(payload.get("phase"), payload.get("phase", "")))
            elif kind == "done":
                record = payload
                text = (
                    "p50 %.3f ms" % record.stats["p50_ms"]
                    if record.ok
                    else "error: %s" % record.reason
                )
                self._say(key, text, final=True)
