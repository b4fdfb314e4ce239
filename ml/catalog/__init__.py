"""Catalog contract, readers, image loading, ingestion, and the demo catalog builder."""
