"""The event collector: Segment's HTTP tracking API in front of the broker stream and the
landing folder (``app``: the HTTP service, ``messages``: validation and enrichment, ``landing``:
the landing-file writer fed by the stream)."""
