"""Timestamps of runs, builds and decisions."""

import datetime


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
