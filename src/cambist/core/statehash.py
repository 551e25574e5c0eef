"""An incrementally maintained hash of the whole core state.

The state is a set of entities (assets, markets, non-zero balances, open orders). Each entity
contributes a 128-bit BLAKE2b digest of its key and value; the state hash is the sum of the
contributions modulo 2**128, mixed with the counters. Changing an entity subtracts its old
contribution and adds the new one, so keeping the hash current costs O(entities touched)
instead of O(state), and the same function computed from scratch proves a rebuilt core
equals the one that was running. Values are hashed as MessagePack of plain tuples of ints,
strings, bools and None, which is canonical and stable across processes (unlike ``hash()``).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import msgspec

_MODULUS = 1 << 128


_encode = msgspec.msgpack.Encoder().encode


def _contribution(key: object, value: Any) -> int:
    # MessagePack of plain tuples of ints, strings, bools and None is canonical and about three
    # times cheaper than repr(); the contribution is what the hash costs per changed entity.
    return int.from_bytes(blake2b(_encode((key, value)), digest_size=16).digest(), "big")


def asset_key(asset: str) -> tuple[str, str]:
    return ("asset", asset)


def market_key(symbol: str) -> tuple[str, str]:
    return ("market", symbol)


def balance_key(account_id: int, asset: str) -> tuple[str, int, str]:
    return ("balance", account_id, asset)


class StateHasher:
    __slots__ = ("_contributions", "_sum")

    def __init__(self) -> None:
        self._contributions: dict[object, int] = {}
        self._sum = 0

    def set(self, key: object, value: Any) -> None:
        """Record the entity's current value; ``None`` means the entity no longer exists."""
        old = self._contributions.pop(key, 0)
        new = 0 if value is None else _contribution(key, _plain(value))
        if new:
            self._contributions[key] = new
        self._sum = (self._sum - old + new) % _MODULUS

    def digest(self, counters: tuple[int, ...]) -> str:
        return blake2b(repr((self._sum, counters)).encode(), digest_size=16).hexdigest()


def _plain(value: Any) -> Any:
    """Structs (market views) become tuples of their plain field values."""
    fields = getattr(value, "__struct_fields__", None)
    if fields is None:
        return value
    return tuple(_plain_scalar(getattr(value, name)) for name in fields)


def _plain_scalar(value: Any) -> Any:
    # str() turns a StrEnum member into its value, so enums hash like the strings they carry.
    return str(value) if isinstance(value, str) else value
