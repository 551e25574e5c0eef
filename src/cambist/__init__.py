"""Cambist: an open-source cryptocurrency exchange backend."""

__version__ = "0.1.0"
