"""Pure rules: events, collection policy, redaction, access decisions (no I/O)."""
