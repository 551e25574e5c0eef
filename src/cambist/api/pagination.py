"""The contract's list shape and its limits."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from cambist.api.errors import bad_request

T = TypeVar("T")
LIMIT_MAX = 1000
# Ids, cursors and times are 64-bit signed integers in the store; anything larger cannot
# name a row and would overflow the database driver.
INT64_MAX = 2**63 - 1


class Page(msgspec.Struct, Generic[T], rename="camel"):
    data: list[T]
    next_cursor: str | None = None


def clamp_limit(limit: int, maximum: int = LIMIT_MAX) -> int:
    if limit < 1:
        raise bad_request("INVALID_LIMIT", f"limit must be between 1 and {maximum}")
    return min(limit, maximum)


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 or int(cursor) > INT64_MAX:
        raise bad_request("INVALID_CURSOR", "cursor must be a value returned as nextCursor")
    return int(cursor)
