"""The local Lambda runtime: one warm container per worker process, and what invokes it."""
