"""Tables of the accounts layer: users, login sessions, refresh tokens and API keys.

Times are integer milliseconds since the Unix epoch (UTC), like everywhere in Cambist. Nothing
secret is stored in clear: passwords as argon2 hashes, refresh tokens as their SHA-256, API-key
secrets encrypted with AES-GCM (see ``cambist.accounts.crypto``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cambist.store.base import Base

# SQLite only auto-numbers a column declared exactly ``INTEGER PRIMARY KEY``; on PostgreSQL the
# id is a BIGINT identity. Both start at 1, and user ids double as trading account ids.
_USER_ID = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite must never hand out the id of a deleted row again, because the id
    # is also the trading account that balances and orders refer to.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(_USER_ID, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(64))  # comma list, e.g. "user,admin"
    status: Mapped[str] = mapped_column(String(16))  # "active" | "disabled"
    created_at: Mapped[int] = mapped_column(BigInteger)


class UserSession(Base):
    """One login: the refresh tokens of a session form a chain, one of them current."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(_USER_ID, ForeignKey("users.id"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)  # slides forward on each refresh
    last_used_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)


class RefreshToken(Base):
    """A refresh token, known only by its hash; ``used_at`` set means it was rotated away."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    session_id: Mapped[str] = mapped_column(String(64), ForeignKey("sessions.id"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ApiKey(Base):
    """A key for signed requests. Deleting a key sets ``revoked_at``; the row stays for audit."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the public key string
    user_id: Mapped[int] = mapped_column(_USER_ID, ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[str] = mapped_column(String(64))  # comma list of read, trade, withdraw
    ip_allowlist: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma list of CIDRs
    # version byte + 12-byte nonce + AES-GCM ciphertext and tag; the key id is the associated
    # data, so a ciphertext copied onto another row does not decrypt.
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
