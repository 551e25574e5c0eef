"""The pure, deterministic trading core: no I/O, no clock, no randomness.

Same command log in, same state and ``state_hash()`` out.
"""
