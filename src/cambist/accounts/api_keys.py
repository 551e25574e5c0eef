"""API keys: creation, listing, revocation, and authentication of signed requests.

Signature checks are on the hot path of every program's request, so the key's record is
cached for a few seconds and its decrypted secret for as long as it stays in a bounded LRU
(the secret never changes). Revocation in this process takes effect at once; other gateway
replicas notice within the record cache's TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from cambist.accounts import repository as repo
from cambist.accounts import signing
from cambist.accounts.cache import TtlLru
from cambist.accounts.crypto import SecretBox
from cambist.accounts.errors import (
    Forbidden,
    InvalidSignature,
    LimitExceeded,
    NotFound,
    ReplayedRequest,
    Unauthorized,
)
from cambist.accounts.permissions import (
    Permission,
    Principal,
    Role,
    join_permissions,
    parse_permissions,
    split_permissions,
)
from cambist.accounts.records import ApiKeyInfo, UserStatus
from cambist.accounts.replay import ReplayGuard
from cambist.accounts.validation import (
    IPNetwork,
    ip_allowed,
    join_ip_allowlist,
    parse_ip_allowlist,
    split_ip_allowlist,
    validate_label,
)
from cambist.store.models_accounts import ApiKey

log = logging.getLogger(__name__)

API_KEYS_PER_USER_MAX = 20
KEY_ID_LENGTH_MAX = 64
KEY_RECORD_TTL_MS = 5_000
KEY_CACHE_ENTRIES_MAX = 10_000
# last_used_at is informative; writing it on every request would put a write on the hot path.
LAST_USED_WRITE_INTERVAL_MS = 60_000
# A signature is remembered as long as any window could accept it. The receive window is not
# covered by the signature, so a replayer can raise it to the maximum: remember for that.
REPLAY_MEMORY_MS = signing.RECV_WINDOW_MS_MAX + signing.FUTURE_TOLERANCE_MS


@dataclass(frozen=True, slots=True)
class _KeyRecord:
    user_id: int
    permissions: frozenset[Permission]
    allowlist: tuple[IPNetwork, ...]
    secret: str


@dataclass(frozen=True, slots=True)
class _Lookup:
    record: _KeyRecord | None  # None: unknown, revoked, undecryptable, or owner disabled


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        label=row.label,
        permissions=split_permissions(row.permissions),
        ip_allowlist=tuple(str(n) for n in split_ip_allowlist(row.ip_allowlist)),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class ApiKeys:
    def __init__(
        self,
        sessions: sessionmaker[DbSession],
        box: SecretBox,
        clock: Callable[[], int],
        replay_guard: ReplayGuard,
        signature_window_ms: int,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._clock = clock
        self._replay_guard = replay_guard
        self._window_ms = signing.check_recv_window(signature_window_ms)
        # Refusals are cached too, so a flood of bad keys stays cheap.
        self._records: TtlLru[str, _Lookup] = TtlLru(KEY_CACHE_ENTRIES_MAX, KEY_RECORD_TTL_MS)
        self._secrets: TtlLru[str, str] = TtlLru(KEY_CACHE_ENTRIES_MAX, None)

    def create(
        self,
        user_id: int,
        label: str,
        permissions: Iterable[str],
        ip_allowlist: Iterable[str] | None = None,
    ) -> tuple[str, str, ApiKeyInfo]:
        label = validate_label(label)
        chosen = parse_permissions(permissions)
        networks = parse_ip_allowlist(ip_allowlist)
        key_id = secrets.token_hex(16)
        secret = secrets.token_hex(32)
        now = self._clock()
        row = ApiKey(
            id=key_id,
            user_id=user_id,
            label=label,
            permissions=join_permissions(chosen),
            ip_allowlist=join_ip_allowlist(networks),
            secret_ciphertext=self._box.seal(secret.encode(), key_id.encode()),
            created_at=now,
        )
        with self._sessions.begin() as db:
            if repo.lock_user(db, user_id) is None:
                raise NotFound("no such user", code="USER_NOT_FOUND")
            # Insert, then count inside the same transaction: once the insert holds the write
            # lock, concurrent creations cannot both slip under the limit.
            repo.add_api_key(db, row)
            if repo.count_active_api_keys(db, user_id) > API_KEYS_PER_USER_MAX:
                raise LimitExceeded(
                    f"at most {API_KEYS_PER_USER_MAX} API keys per account",
                    code="TOO_MANY_API_KEYS",
                )
            info = _info(row)
        return key_id, secret, info

    def list_for_user(self, user_id: int) -> list[ApiKeyInfo]:
        with self._sessions() as db:
            return [_info(row) for row in repo.active_api_keys(db, user_id)]

    def delete(self, user_id: int, key_id: str) -> None:
        """Revoke a key of this user; another user's key is reported as not found."""
        with self._sessions.begin() as db:
            revoked = repo.revoke_api_key(db, user_id, key_id, self._clock())
        if not revoked:
            raise NotFound("no such API key", code="API_KEY_NOT_FOUND")
        self._records.discard(key_id)
        self._secrets.discard(key_id)

    def authenticate(
        self,
        api_key: str,
        timestamp: str,
        signature: str,
        method: str,
        path_with_query: str,
        body: bytes,
        recv_window_ms: int | None,
        client_ip: str | None,
    ) -> Principal:
        # Cheap checks first: malformed headers and stale requests never reach the database.
        signing.check_signature_format(signature)
        timestamp_ms = signing.parse_timestamp(timestamp)
        window_ms = self._window_ms if recv_window_ms is None else signing.check_recv_window(recv_window_ms)
        now = self._clock()
        signing.check_timestamp(timestamp_ms, now, window_ms)
        record = self._record(api_key, now)
        if record is None:
            raise Unauthorized("unknown or revoked API key")
        signing.verify_signature(record.secret, signature, timestamp, method, path_with_query, body)
        if not ip_allowed(client_ip, record.allowlist):
            raise Forbidden("this API key may not be used from this IP address", code="IP_NOT_ALLOWED")
        # Remembered only once the signature is proven, so forgeries cannot fill the guard.
        if not self._replay_guard.first_seen(f"{api_key}:{signature}", REPLAY_MEMORY_MS, now):
            raise ReplayedRequest()
        return Principal(
            user_id=record.user_id,
            roles=frozenset({Role.USER}),
            session_id=None,
            permissions=record.permissions,
            api_key_id=api_key,
        )

    def authenticate_payload(
        self, api_key: str, payload: bytes, signature: str, client_ip: str | None
    ) -> Principal:
        """Check ``signature`` = hex HMAC-SHA256(secret, ``payload``) for a foreign signing rule
        (the Binance facade signs its own ``totalParams``; its caller checks the timestamp).
        Raises ``Unauthorized`` for an unknown key, ``InvalidSignature``, ``Forbidden`` for an IP
        outside the key's allowlist."""
        if not isinstance(signature, str) or len(signature) != 64:
            raise InvalidSignature()
        now = self._clock()
        record = self._record(api_key, now)
        if record is None:
            raise Unauthorized("unknown or revoked API key")
        expected = hmac.new(record.secret.encode(), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise InvalidSignature()
        if not ip_allowed(client_ip, record.allowlist):
            raise Forbidden("this API key may not be used from this IP address", code="IP_NOT_ALLOWED")
        return Principal(
            user_id=record.user_id,
            roles=frozenset({Role.USER}),
            session_id=None,
            permissions=record.permissions,
            api_key_id=api_key,
        )

    def principal(self, api_key: str, client_ip: str | None) -> Principal | None:
        """Who a usable key belongs to, from this IP, without a signature: for endpoints that
        take the key alone (Binance's userDataStream). None: unknown, revoked or not from here."""
        record = self._record(api_key, self._clock())
        if record is None or not ip_allowed(client_ip, record.allowlist):
            return None
        return Principal(
            user_id=record.user_id,
            roles=frozenset({Role.USER}),
            session_id=None,
            permissions=record.permissions,
            api_key_id=api_key,
        )

    def _record(self, api_key: str, now: int) -> _KeyRecord | None:
        if not isinstance(api_key, str) or not api_key or len(api_key) > KEY_ID_LENGTH_MAX:
            return None
        cached = self._records.get(api_key, now)
        if cached is None:
            cached = _Lookup(self._load(api_key, now))
            self._records.put(api_key, cached, now)
        return cached.record

    def _load(self, api_key: str, now: int) -> _KeyRecord | None:
        with self._sessions.begin() as db:
            found = repo.get_api_key_with_user(db, api_key)
            if found is None:
                return None
            row, user = found
            if row.revoked_at is not None or user.status != UserStatus.ACTIVE:
                return None
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_WRITE_INTERVAL_MS:
                repo.touch_api_key(db, api_key, now)
            ciphertext = row.secret_ciphertext
            record_fields = (row.user_id, row.permissions, row.ip_allowlist)
        secret = self._secrets.get(api_key, now)
        if secret is None:
            try:
                secret = self._box.open(ciphertext, api_key.encode()).decode()
            except ValueError:
                # Most likely secret_key changed since the key was created.
                log.warning("API key %s: the stored secret does not decrypt", api_key)
                return None
            self._secrets.put(api_key, secret, now)
        user_id, permissions, allowlist = record_fields
        return _KeyRecord(
            user_id=user_id,
            permissions=split_permissions(permissions),
            allowlist=split_ip_allowlist(allowlist),
            secret=secret,
        )
