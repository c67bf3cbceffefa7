"""``edgebench export``: a stored run in the formats of tools teams already run (MLflow,
Bencher)."""
