"""Where runs live: a local results directory (local.py, the default) or a PostgreSQL
database shared by a team (postgres.py).  Commands reach either through :func:`open_store`
and the :class:`Run` / :class:`Store` interface (api.py); ``open_run`` and ``RunStore``
stay the local directory's own names."""

from .api import Run, Store
from .backend import open_store, store_location
from .local import (
    DEFAULT_ROOT,
    LATEST,
    META_FILE,
    META_VERSION,
    RAW_DIR,
    SUMMARY_FILE,
    RunMeta,
    RunStore,
    StoreError,
    atomic_write,
    new_run_id,
    open_run,
    output_file,
    safe_name,
    summary_csv,
    writable_dir,
)

__all__ = [
    "DEFAULT_ROOT",
    "LATEST",
    "META_FILE",
    "META_VERSION",
    "RAW_DIR",
    "SUMMARY_FILE",
    "Run",
    "RunMeta",
    "RunStore",
    "Store",
    "StoreError",
    "atomic_write",
    "new_run_id",
    "open_run",
    "open_store",
    "output_file",
    "safe_name",
    "store_location",
    "summary_csv",
    "writable_dir",
]
