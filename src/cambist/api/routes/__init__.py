"""One module per feature; each exposes ``ROUTES``."""
