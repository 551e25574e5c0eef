"""One WebSocket client: a bounded outgoing queue drained by its own writer task.

The fan-out only ever calls ``deliver`` (``put_nowait``): a client that cannot keep up fills
its queue and is closed with 1013 ("try again later") instead of slowing the engine or the
other clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

SEND_QUEUE_MAX = 1000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008


class _Close:
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Connection:
    def __init__(self, maxsize: int | None = None) -> None:
        self.queue: asyncio.Queue[str | _Close] = asyncio.Queue(
            SEND_QUEUE_MAX if maxsize is None else maxsize
        )
        self.channels: set[str] = set()
        self.account_id: int | None = None
        self.closing = False
        # Called once when the client is dropped (the handler unsubscribes it everywhere).
        self.on_drop: Callable[[], None] | None = None

    def deliver(self, frame: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop(CLOSE_TRY_AGAIN_LATER, "too slow: messages were not read in time")

    def drop(self, code: int, reason: str) -> None:
        """Forget what is queued and have the writer close the socket with ``code``."""
        if self.closing:
            return
        self.closing = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_Close(code, reason))
        if self.on_drop is not None:
            self.on_drop()

    async def write(
        self, send: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]]
    ) -> None:
        """The writer task: send frames in order until told to close."""
        while True:
            item = await self.queue.get()
            if isinstance(item, _Close):
                await close(item.code, item.reason)
                return
            await send(item)
