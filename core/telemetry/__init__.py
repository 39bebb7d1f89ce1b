"""Serving telemetry of the platform: Prometheus metrics and per-minute rollups.

Two outputs from the same in-process recording, both kept off the request path:

- Prometheus (`core.telemetry.prometheus`, `/metrics`): counters and histograms of
  `prometheus_client`; with `PROMETHEUS_MULTIPROC_DIR` set, every process (gunicorn workers,
  Celery pool processes) writes its own memory-mapped files and one scrape of any web worker
  sums them all.
- Rollups (`core.telemetry.rollups`): per-minute buckets (count, errors, latency sum, max and
  histogram buckets) buffered in memory and merged into the database by a background thread at
  most every `TELEMETRY_FLUSH_SECONDS`, so the portal can draw them without a Prometheus server;
  kept `TELEMETRY_RETENTION_DAYS`.

The platform records HTTP requests (`core.telemetry.middleware`) and jobs (`core.jobs.runner`);
`ml.telemetry` records predictions with its own buffer and table: the core knows no model.
"""
