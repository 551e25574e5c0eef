"""What gateways and the engine send each other over Redis, and the keys they use.

Keys live under one namespace (``CAMBIST_REDIS_NAMESPACE``), so several deployments can share
a Redis server without ever reading each other's commands:

- ``<ns>:commands``        stream, gateway → engine: one entry per command
- ``<ns>:replies:<gw>``    stream, engine → one gateway: outcomes, several per entry
- ``<ns>:events``          pub/sub channel, engine → every gateway: committed batches
- ``<ns>:engine``          key, the engine's heartbeat (expires when the engine stops beating)

Everything is msgpack through msgspec; commands keep their journal encoding.
"""

from __future__ import annotations

import msgspec

from cambist.core.events import Changes, Outcome
from cambist.engine.engine import CommittedBatch, DepthSnapshot

HEARTBEAT_INTERVAL_S = 0.5
HEARTBEAT_TTL_MS = 3000  # a heartbeat older than this: the engine is gone


class Keys:
    def __init__(self, namespace: str) -> None:
        self.commands = f"{namespace}:commands"
        self.events = f"{namespace}:events"
        self.heartbeat = f"{namespace}:engine"
        self._replies = f"{namespace}:replies:"

    def replies(self, gateway_id: str) -> str:
        return self._replies + gateway_id


# Stream entry fields of a command (bytes keys, as Redis returns them).
FIELD_GATEWAY = b"g"
FIELD_REQUEST = b"r"
FIELD_COMMAND = b"c"
FIELD_REPLIES = b"o"


class ReplyError:
    """Why a command has no outcome. Only UNKNOWN leaves open whether it was applied."""

    EXPIRED = "expired"  # not taken within the command timeout: never applied
    OVERLOADED = "overloaded"  # the engine's inbox was full: never applied
    UNAVAILABLE = "unavailable"  # the engine was not taking commands: never applied
    UNKNOWN = "unknown"  # the engine failed while committing it: look it up
    MALFORMED = "malformed"  # the entry could not be decoded: never applied


class Reply(msgspec.Struct, array_like=True, frozen=True):
    request_id: int
    outcome: Outcome | None = None
    error: str | None = None
    message: str = ""


class EventBatch(msgspec.Struct, tag="batch", array_like=True, frozen=True):
    """One committed batch as gateways need it. Of the ledger only credits travel (the Binance
    user stream tells deposits as ``balanceUpdate``); the rest stays in the engine."""

    first_seq: int
    changes: Changes
    depth: list[DepthSnapshot]

    @classmethod
    def of(cls, batch: CommittedBatch) -> EventBatch:
        credits = [entry for entry in batch.changes.ledger if entry.kind == "credit"]
        changes = msgspec.structs.replace(batch.changes, ledger=credits)
        return cls(batch.first_seq, changes, list(batch.depth.values()))

    def committed(self) -> CommittedBatch:
        return CommittedBatch([], self.changes, {d.symbol: d for d in self.depth}, self.first_seq)


class EngineRestarted(msgspec.Struct, tag="restarted", array_like=True, frozen=True):
    """The engine (re)built its core from the store: followers start over from the store."""

    sequence: int


Event = EventBatch | EngineRestarted


class EngineStatus(msgspec.Struct, frozen=True):
    """The heartbeat's value."""

    instance: str  # changes with every engine start
    available: bool
    last_seq: int
    inbox: int


_reply_list_encoder = msgspec.msgpack.Encoder()
_reply_list_decoder = msgspec.msgpack.Decoder(list[Reply])
_event_decoder = msgspec.msgpack.Decoder(Event)
_status_decoder = msgspec.msgpack.Decoder(EngineStatus)


def encode(value: object) -> bytes:
    return _reply_list_encoder.encode(value)


def decode_replies(payload: bytes) -> list[Reply]:
    return _reply_list_decoder.decode(payload)


def decode_event(payload: bytes) -> Event:
    return _event_decoder.decode(payload)


def decode_status(payload: bytes) -> EngineStatus:
    return _status_decoder.decode(payload)
