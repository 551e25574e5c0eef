"""All SQL of the accounts layer, as small functions over an open ORM session.

The services own the transactions; these functions only read and write rows. Conditional
updates report whether they changed a row, which is how races are settled in the database
rather than in Python (two refreshes of one token: exactly one update wins).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session as DbSession

from cambist.store.models_accounts import ApiKey, RefreshToken, User, UserSession


def _changed(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


# -- users --------------------------------------------------------------------------------


def get_user(db: DbSession, user_id: int) -> User | None:
    return db.get(User, user_id)


def lock_user(db: DbSession, user_id: int) -> User | None:
    """Read the user row locked (PostgreSQL), serializing per-user limits such as key counts."""
    return db.scalars(select(User).where(User.id == user_id).with_for_update()).first()


def get_user_by_email(db: DbSession, email: str) -> User | None:
    return db.scalars(select(User).where(User.email == email)).first()


def add_user(db: DbSession, user: User) -> int:
    db.add(user)
    db.flush()  # assigns the id
    return user.id


# -- sessions -----------------------------------------------------------------------------


def add_session(db: DbSession, session: UserSession) -> None:
    db.add(session)
    db.flush()


def get_session_with_user(db: DbSession, session_id: str) -> tuple[UserSession, User] | None:
    row = db.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id == session_id)
    ).first()
    return None if row is None else (row[0], row[1])


def active_sessions(db: DbSession, user_id: int, now_ms: int) -> list[UserSession]:
    """Sessions not revoked nor expired, newest first."""
    return list(
        db.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > now_ms,
            )
            .order_by(UserSession.created_at.desc(), UserSession.id)
        )
    )


def revoke_sessions(db: DbSession, session_ids: list[str], now_ms: int) -> int:
    if not session_ids:
        return 0
    return _changed(
        db.execute(
            update(UserSession)
            .where(UserSession.id.in_(session_ids), UserSession.revoked_at.is_(None))
            .values(revoked_at=now_ms)
        )
    )


def user_session_ids(db: DbSession, user_id: int, session_ids: list[str] | None = None) -> list[str]:
    """Ids of the user's unrevoked sessions (optionally only among ``session_ids``)."""
    query = select(UserSession.id).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if session_ids is not None:
        query = query.where(UserSession.id.in_(session_ids))
    return list(db.scalars(query))


def extend_session(db: DbSession, session_id: str, now_ms: int, expires_at: int) -> None:
    db.execute(
        update(UserSession)
        .where(UserSession.id == session_id)
        .values(last_used_at=now_ms, expires_at=expires_at)
    )


def touch_session(db: DbSession, session_id: str, now_ms: int) -> None:
    db.execute(update(UserSession).where(UserSession.id == session_id).values(last_used_at=now_ms))


# -- refresh tokens -----------------------------------------------------------------------


def add_refresh_token(db: DbSession, token_hash: str, session_id: str, now_ms: int) -> None:
    db.add(RefreshToken(token_hash=token_hash, session_id=session_id, created_at=now_ms))
    db.flush()


def get_refresh_token(db: DbSession, token_hash: str) -> RefreshToken | None:
    return db.get(RefreshToken, token_hash)


def mark_refresh_token_used(db: DbSession, token_hash: str, now_ms: int) -> bool:
    """Supersede the token; False if it was already used (by a concurrent refresh too)."""
    return (
        _changed(
            db.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
                .values(used_at=now_ms)
            )
        )
        == 1
    )


# -- API keys -----------------------------------------------------------------------------


def add_api_key(db: DbSession, key: ApiKey) -> None:
    db.add(key)
    db.flush()


def count_active_api_keys(db: DbSession, user_id: int) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        )
        or 0
    )


def active_api_keys(db: DbSession, user_id: int) -> list[ApiKey]:
    return list(
        db.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    )


def get_api_key_with_user(db: DbSession, key_id: str) -> tuple[ApiKey, User] | None:
    row = db.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
    ).first()
    return None if row is None else (row[0], row[1])


def revoke_api_key(db: DbSession, user_id: int, key_id: str, now_ms: int) -> bool:
    return (
        _changed(
            db.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now_ms)
            )
        )
        == 1
    )


def touch_api_key(db: DbSession, key_id: str, now_ms: int) -> None:
    db.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now_ms))
