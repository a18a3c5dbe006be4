"""Benchmarks. `pipelines` is imported first, as the CLI does, so that its process settings
(Arrow's memory pool) apply before anything loads pyarrow."""

import pipelines  # noqa: F401
