"""Real-time segments: the stream consumer (``consumer``), the in-session rules (``rules``), the
per-person state in Redis (``state``), read by the online API next to the batch profile."""
