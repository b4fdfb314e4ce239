"""MLflow helpers (runs, registry) and the demo's summary.json."""
