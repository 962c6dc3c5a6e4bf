"""Use cases: the one place that enforces policy and writes the audit log."""
