"""The single writer: inbox, batching, journal, recovery."""
