"""Ingest: a run of a source (its lifecycle, where its bodies come from), the writes, backfills,
schedules and handing runs to the workers."""
