"""Dagster wiring: Definitions, resources, IO managers, jobs, sensors and profiles."""
