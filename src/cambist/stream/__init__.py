"""The WebSocket API (``/ws``): committed batches fanned out to subscribed connections."""
