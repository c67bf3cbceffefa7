"""A background sampler: a daemon thread that samples, sleeps, and stops with its ``with``."""

from __future__ import annotations

import threading
from typing import Any, Optional


class Periodic:
    """Calls :meth:`tick` every ``interval_s`` from ``with`` entry to exit (when
    :attr:`enabled`); :meth:`finish` runs once after the thread has stopped."""

    def __init__(self, interval_s: float, name: str) -> None:
        self.interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def tick(self) -> Optional[bool]:
        """Take one sample; return False to stop sampling."""
        raise NotImplementedError

    def finish(self) -> None:
        """A last sample after the window, if the sampler needs one."""

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.tick() is False:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> Any:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self.finish()
