"""Progress on stderr: during a run, a line per device x artifact under an overall line (jobs
done of all, and the time left); while variants are built, the one being built.  A rich
display on a terminal, plain lines otherwise.  Names go out as plain text: rich's highlighter
would colour the digits in ``digits.int8.tflite``, and markup would eat ``[...]``."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, Mapping, Optional, Tuple

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..optimize.variants import Outcome, Watch, input_line, outcome_line

PHASES = {
    "import": "importing runtime",
    "load": "loading model",
    "warmup": "warming up",
    "measure": "measuring",
    "accuracy": "accuracy pass",
    "idle-gaps": "idle gaps",
    "pipeline": "timing the pipeline",
    "placement": "finding the placement",
    "profile": "profiling ops",
}


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs) if hours else "%d:%02d" % (minutes, secs)


def overall(done: int, total: int, elapsed: float) -> str:
    """``overall: 2/6 jobs done, about 1:20 left``: the time left is the time per job so far
    times the jobs left (devices run side by side, so this is per job of the whole run)."""
    text = "overall: %d/%d jobs done" % (done, total)
    if done >= total:
        return "%s in %s" % (text, _clock(elapsed))
    return text + (", about %s left" % _clock(elapsed / done * (total - done)) if done else "")


def _live(console: Console, redirect: bool = True) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=redirect,
        redirect_stderr=redirect,
    )


class Display:
    """What a run is doing, fed by the runner's events.  ``console``: where the live display
    goes (default: stderr when it is a terminal; plain lines when it is not)."""

    def __init__(self, quiet: bool = False, console: Optional[Console] = None) -> None:
        self.quiet = quiet
        self._console = console
        self._lock = threading.Lock()
        self._progress: Optional[Progress] = None
        self._tasks: Dict[Tuple[str, str], TaskID] = {}
        self._quarters: Dict[Tuple[str, str], int] = {}
        self._overall: Optional[TaskID] = None
        self._total = self._done = 0
        self._started = time.monotonic()

    def __enter__(self) -> Display:
        self._started = time.monotonic()
        if self._console is None and sys.stderr.isatty():
            self._console = Console(stderr=True, highlight=False)
        if not self.quiet and self._console is not None:
            self._progress = _live(self._console)
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
            self._progress.console.print(Text(label))
            self._progress.remove_task(task)
            del self._tasks[key]

    def _count(self) -> None:
        text = overall(self._done, self._total, time.monotonic() - self._started)
        if self._progress is None:
            print(text, file=sys.stderr, flush=True)
        elif self._overall is None:  # queued before any job starts: the top line
            self._overall = self._progress.add_task(text, total=None)
        else:
            self._progress.update(self._overall, description=text)

    def event(self, device: str, artifact: str, kind: str, payload: Any) -> None:
        if self.quiet or kind == "log":
            return
        with self._lock:
            key = (device, artifact)
            if kind == "queued":
                self._total += 1
                if self._progress is not None:
                    self._count()
            elif kind == "start":
                where = (
                    " %s %d/%d"
                    % (payload.get("label", "round"), payload["round"], payload["rounds"])
                    if payload
                    else ""
                )
                self._say(key, "starting" + where)
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
                self._done += 1
                self._count()


class BuildDisplay(Watch):
    """While variants are built: each one's result line through ``echo`` as it finishes and,
    on a terminal, a passing line for the one being built (its phase, the batches calibrated,
    the time so far)."""

    def __init__(
        self, echo: Callable[[str], None], quiet: bool = False, console: Optional[Console] = None
    ) -> None:
        self.echo = echo
        self.quiet = quiet
        self._console = console
        self._terminal: Optional[IO[str]] = None
        self._progress: Optional[Progress] = None
        self._task: Optional[TaskID] = None
        self._now = ("", "")  # the file being built and its phase

    def __enter__(self) -> BuildDisplay:
        if self._console is None and not self.quiet and sys.stderr.isatty():
            # a descriptor of its own: while a recipe runs, 1 and 2 go to the recipe's log
            self._terminal = os.fdopen(os.dup(sys.stderr.fileno()), "w")
            self._console = Console(file=self._terminal, highlight=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
        if self._terminal is not None:
            self._terminal.close()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = None
            self._now = ("", "")

    def model(self, parent: Mapping[str, Any]) -> None:
        self.echo(input_line(parent))

    def phase(self, file: str, text: str, done: int = 0, total: int = 0) -> None:
        if self._console is None or self.quiet:
            return
        label = "%s: %s" % (file, text) + (" %d/%d" % (done, total) if total else "")
        if self._progress is None:
            self._progress = _live(self._console, redirect=False)  # the log has the streams
            self._progress.start()
        if self._task is None or self._now[0] != file:  # a composition's next step
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(label, total=None)
        # drawn now when the phase changes, so that even a quick one shows
        self._progress.update(self._task, description=label, refresh=self._now != (file, text))
        self._now = (file, text)

    def outcome(self, outcome: Outcome, parent: Mapping[str, Any]) -> None:
        self._stop()
        self.echo(outcome_line(outcome, parent))
