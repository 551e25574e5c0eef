"""Public market data derived from committed engine batches: depth, ticker, reference data."""
