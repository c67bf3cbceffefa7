"""``edgebench export``: a stored run in the formats of tools teams already run (MLflow,
Bencher): ``command`` (the command), ``bencher``, ``mlflow_runs``."""


class ExportError(Exception):
    """Nothing could be exported, or the tracking server refused or could not be reached;
    one line (exit 2)."""
