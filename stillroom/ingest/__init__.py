"""ingest: documents → clean text with provenance → chunks. `ingest_paths` is what the CLI and UI call."""

from stillroom.ingest.pipeline import IngestReport, ingest_paths

__all__ = ["IngestReport", "ingest_paths"]
