"""Pipelines: build dlt pipelines for sources and destinations, run syncs, serve the CLI."""
