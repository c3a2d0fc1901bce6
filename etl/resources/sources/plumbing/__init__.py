"""Shared plumbing of the sources: HTTP with retries, OAuth tokens, value shaping, canonical
frames, time grids and paths. No vendor logic lives here."""
