"""``AccountService``: the one entry point the gateway calls for users, sessions and API keys.

Synchronous by design (SQLAlchemy's sync engine, argon2 hashing): the gateway calls it through
a worker thread. All state shared between threads (caches, replay memory) is locked.

Sessions: a login creates a session and a chain of refresh tokens. Each refresh supersedes the
presented token and issues the next; presenting a superseded token again means two parties hold
the chain (a stolen token), so the whole session is revoked. Access tokens are short-lived JWTs
naming their session; their session's validity is re-read at most every few seconds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from cambist.accounts import repository as repo
from cambist.accounts import signing
from cambist.accounts.api_keys import ApiKeys
from cambist.accounts.cache import TtlLru
from cambist.accounts.crypto import SecretBox, derive_key
from cambist.accounts.errors import (
    AuthError,
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    RefreshTokenReused,
    TokenExpired,
    Unauthorized,
)
from cambist.accounts.passwords import PASSWORD_LENGTH_MAX, Passwords, validate_password
from cambist.accounts.permissions import (
    Principal,
    Role,
    join_roles,
    parse_roles,
    split_roles,
)
from cambist.accounts.records import ApiKeyInfo, SessionInfo, TokenPair, UserInfo, UserStatus
from cambist.accounts.replay import MemoryReplayGuard, ReplayGuard
from cambist.accounts.tokens import (
    AccessClaims,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from cambist.accounts.validation import normalize_email
from cambist.store.models_accounts import User, UserSession

SESSIONS_PER_USER_MAX = 50  # a new login beyond this ends the oldest sessions
SESSION_CACHE_TTL_MS = 5_000
SESSION_CACHE_ENTRIES_MAX = 100_000
# Access tokens whose signature was checked once: a bot sends the same token with every
# request, and PyJWT costs 100-300 us per decode (12-17 % of the server's CPU under load).
# Only verified tokens enter, so garbage cannot fill it; expiry is still checked at each use.
VERIFIED_TOKENS_MAX = 100_000
SESSION_TOUCH_INTERVAL_MS = 60_000  # how stale last_used_at may get, to spare writes
REFRESH_TOKEN_LENGTH_MAX = 256
IP_LENGTH_MAX = 64
USER_AGENT_LENGTH_MAX = 256


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _SessionState:
    """What an access token's check needs, cached per session id."""

    user_id: int
    roles: frozenset[Role]
    expires_at: int
    usable: bool  # not revoked and the user is active


@dataclass(frozen=True, slots=True)
class _Reused:
    """A superseded refresh token came back; its session has been revoked."""

    session_id: str


def _user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        email=user.email,
        roles=split_roles(user.roles),
        status=UserStatus(user.status),
        created_at=user.created_at,
    )


def _session_info(row: UserSession) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        ip=row.ip,
        user_agent=row.user_agent,
    )


class AccountService:
    def __init__(
        self,
        engine: Engine,
        secret_key: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        clock: Callable[[], int] = wall_clock_ms,
        *,
        signature_window_ms: int = signing.DEFAULT_WINDOW_MS,
        replay_guard: ReplayGuard | None = None,
        passwords: Passwords | None = None,
        session_cache_ttl_ms: int = SESSION_CACHE_TTL_MS,
    ) -> None:
        if access_ttl_s <= 0 or refresh_ttl_s <= 0:
            raise ValueError("token lifetimes must be positive")
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._jwt_key = derive_key(secret_key, "jwt-access/v1")
        self._access_ttl_s = access_ttl_s
        self._refresh_ttl_ms = refresh_ttl_s * 1000
        self._clock = clock
        self._passwords = passwords if passwords is not None else Passwords()
        self._session_states: TtlLru[str, _SessionState] = TtlLru(
            SESSION_CACHE_ENTRIES_MAX, session_cache_ttl_ms
        )
        self._verified_tokens: TtlLru[str, AccessClaims] = TtlLru(VERIFIED_TOKENS_MAX, None)
        self._api_keys = ApiKeys(
            self._sessions,
            SecretBox(derive_key(secret_key, "api-key-secret/v1")),
            clock,
            replay_guard if replay_guard is not None else MemoryReplayGuard(),
            signature_window_ms,
        )

    # -- users ----------------------------------------------------------------------------

    def register(self, email: str, password: str) -> int:
        """Create a ``user`` account and return its id (also its trading account id)."""
        email = normalize_email(email)
        validate_password(password)
        password_hash = self._passwords.hash(password)  # slow: outside any transaction
        try:
            with self._sessions.begin() as db:
                if repo.get_user_by_email(db, email) is not None:
                    raise EmailTaken()
                return repo.add_user(db, self._new_user(email, password_hash, {Role.USER}))
        except IntegrityError:
            raise EmailTaken() from None  # lost a race with a concurrent registration

    def create_user(self, email: str, password: str, roles: Iterable[str]) -> int:
        """For ``cambist admin create-user``: create, or reset the password and roles of an
        existing account (whose sessions then end, as after any password change)."""
        email = normalize_email(email)
        validate_password(password)
        chosen = parse_roles(roles)
        password_hash = self._passwords.hash(password)
        with self._sessions.begin() as db:
            user = repo.get_user_by_email(db, email)
            if user is None:
                return repo.add_user(db, self._new_user(email, password_hash, chosen))
            user.password_hash = password_hash
            user.roles = join_roles(chosen)
            user.status = UserStatus.ACTIVE.value
            ended = repo.user_session_ids(db, user.id)
            repo.revoke_sessions(db, ended, self._clock())
            user_id = user.id
        self._forget_sessions(ended)
        return user_id

    def get_user(self, user_id: int) -> UserInfo:
        with self._sessions() as db:
            user = repo.get_user(db, user_id)
            if user is None:
                raise NotFound("no such user", code="USER_NOT_FOUND")
            return _user_info(user)

    def _new_user(self, email: str, password_hash: str, roles: Iterable[Role]) -> User:
        return User(
            email=email,
            password_hash=password_hash,
            roles=join_roles(roles),
            status=UserStatus.ACTIVE.value,
            created_at=self._clock(),
        )

    # -- login, refresh, logout -----------------------------------------------------------

    def login(
        self, email: str, password: str, ip: str | None = None, user_agent: str | None = None
    ) -> TokenPair:
        user = self._check_credentials(email, password)
        if user.status != UserStatus.ACTIVE:
            raise Forbidden("this account is disabled", code="ACCOUNT_DISABLED")
        now = self._clock()
        session_id = secrets.token_urlsafe(16)
        refresh_token = new_refresh_token()
        new_hash = (
            self._passwords.hash(password) if self._passwords.needs_rehash(user.password_hash) else None
        )
        with self._sessions.begin() as db:
            if new_hash is not None:  # argon2 parameters were raised since the last login
                stored = repo.get_user(db, user.id)
                if stored is not None:
                    stored.password_hash = new_hash
            repo.add_session(
                db,
                UserSession(
                    id=session_id,
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + self._refresh_ttl_ms,
                    last_used_at=now,
                    ip=ip[:IP_LENGTH_MAX] if ip else None,
                    user_agent=user_agent[:USER_AGENT_LENGTH_MAX] if user_agent else None,
                ),
            )
            repo.add_refresh_token(db, hash_refresh_token(refresh_token), session_id, now)
            # Bound the sessions per user: many logins must not pile up rows without limit.
            active = repo.active_sessions(db, user.id, now)
            ended = [s.id for s in active[SESSIONS_PER_USER_MAX:]]
            repo.revoke_sessions(db, ended, now)
        self._forget_sessions(ended)
        return self._token_pair(user.id, session_id, split_roles(user.roles), refresh_token, now)

    def _check_credentials(self, email: str, password: str) -> User:
        """The user for this email and password, or ``InvalidCredentials`` whichever is wrong.

        An unknown email costs one argon2 verification like a known one, so timing does not
        tell them apart.
        """
        if not isinstance(password, str) or len(password) > PASSWORD_LENGTH_MAX:
            raise InvalidCredentials()  # no account can have such a password
        try:
            normalized: str | None = normalize_email(email)
        except InvalidInput:
            normalized = None
        user = None
        if normalized is not None:
            with self._sessions() as db:
                user = repo.get_user_by_email(db, normalized)
        if user is None:
            self._passwords.verify_dummy(password)
            raise InvalidCredentials()
        if not self._passwords.verify(user.password_hash, password):
            raise InvalidCredentials()
        return user

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new pair; the presented token is superseded."""
        if (
            not isinstance(refresh_token, str)
            or not refresh_token
            or len(refresh_token) > REFRESH_TOKEN_LENGTH_MAX
        ):
            raise Unauthorized("invalid refresh token")
        now = self._clock()
        next_token = new_refresh_token()
        with self._sessions.begin() as db:
            # Errors are returned, not raised, inside the transaction: the reuse case must
            # commit the session's revocation before the caller hears about it.
            outcome = self._rotate(db, hash_refresh_token(refresh_token), next_token, now)
        if isinstance(outcome, _Reused):
            self._forget_sessions([outcome.session_id])
            raise RefreshTokenReused()
        if isinstance(outcome, AuthError):
            raise outcome
        return outcome

    def _rotate(
        self, db: DbSession, token_hash: str, next_token: str, now: int
    ) -> TokenPair | AuthError | _Reused:
        token = repo.get_refresh_token(db, token_hash)
        if token is None:
            return Unauthorized("invalid refresh token")
        found = repo.get_session_with_user(db, token.session_id)
        if found is None:
            return Unauthorized("invalid refresh token")
        session, user = found
        if session.revoked_at is not None or session.expires_at <= now:
            return Unauthorized("the session has ended; log in again")
        if user.status != UserStatus.ACTIVE:
            return Forbidden("this account is disabled", code="ACCOUNT_DISABLED")
        # The conditional update settles concurrent refreshes: one wins, the other is reuse.
        if token.used_at is not None or not repo.mark_refresh_token_used(db, token_hash, now):
            repo.revoke_sessions(db, [session.id], now)
            return _Reused(session.id)
        repo.add_refresh_token(db, hash_refresh_token(next_token), session.id, now)
        repo.extend_session(db, session.id, now, now + self._refresh_ttl_ms)
        return self._token_pair(user.id, session.id, split_roles(user.roles), next_token, now)

    def logout(self, session_id: str) -> None:
        """End a session (idempotent). The gateway passes ``principal.session_id``."""
        with self._sessions.begin() as db:
            repo.revoke_sessions(db, [session_id], self._clock())
        self._forget_sessions([session_id])

    def _token_pair(
        self, user_id: int, session_id: str, roles: frozenset[Role], refresh_token: str, now: int
    ) -> TokenPair:
        access = issue_access_token(
            self._jwt_key,
            user_id=user_id,
            session_id=session_id,
            roles=roles,
            now_ms=now,
            ttl_s=self._access_ttl_s,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=self._access_ttl_s,
            session_id=session_id,
        )

    # -- access tokens --------------------------------------------------------------------

    def authenticate_access_token(self, token: str) -> Principal:
        """The caller behind a bearer token; raises ``TokenExpired`` or ``Unauthorized``."""
        now = self._clock()
        claims = self._verified_tokens.get(token, now)
        if claims is None:
            claims = decode_access_token(token, self._jwt_key, now_ms=now)
            self._verified_tokens.put(token, claims, now)
        elif now // 1000 >= claims.expires_at_s:
            raise TokenExpired()
        state = self._session_state(claims.session_id, now)
        if state is None or not state.usable or state.expires_at <= now or state.user_id != claims.user_id:
            raise Unauthorized("the session has ended; log in again")
        # Roles come from the database (cached briefly), not the token: a demoted admin loses
        # the role within seconds rather than at token expiry.
        return Principal(user_id=state.user_id, roles=state.roles, session_id=claims.session_id)

    def _session_state(self, session_id: str, now: int) -> _SessionState | None:
        cached = self._session_states.get(session_id, now)
        if cached is not None:
            return cached
        with self._sessions.begin() as db:
            found = repo.get_session_with_user(db, session_id)
            if found is None:
                return None
            session, user = found
            state = _SessionState(
                user_id=session.user_id,
                roles=split_roles(user.roles),
                expires_at=session.expires_at,
                usable=session.revoked_at is None and user.status == UserStatus.ACTIVE,
            )
            if state.usable and now - session.last_used_at >= SESSION_TOUCH_INTERVAL_MS:
                repo.touch_session(db, session_id, now)
        self._session_states.put(session_id, state, now)
        return state

    def _forget_sessions(self, session_ids: Iterable[str]) -> None:
        for session_id in session_ids:
            self._session_states.discard(session_id)

    # -- sessions of a user ---------------------------------------------------------------

    def list_sessions(self, user_id: int) -> list[SessionInfo]:
        """Active sessions, newest first."""
        with self._sessions() as db:
            return [_session_info(s) for s in repo.active_sessions(db, user_id, self._clock())]

    def revoke_session(self, user_id: int, session_id: str) -> None:
        """End one of the user's sessions; another user's session is reported as not found."""
        with self._sessions.begin() as db:
            ended = repo.user_session_ids(db, user_id, [session_id])
            if not ended:
                raise NotFound("no such session", code="SESSION_NOT_FOUND")
            repo.revoke_sessions(db, ended, self._clock())
        self._forget_sessions(ended)

    def revoke_all_sessions(self, user_id: int) -> int:
        """Log out everywhere; returns how many sessions were ended."""
        with self._sessions.begin() as db:
            ended = repo.user_session_ids(db, user_id)
            count = repo.revoke_sessions(db, ended, self._clock())
        self._forget_sessions(ended)
        return count

    # -- API keys -------------------------------------------------------------------------

    def create_api_key(
        self,
        user_id: int,
        label: str,
        permissions: Iterable[str],
        ip_allowlist: Iterable[str] | None = None,
    ) -> tuple[str, str, ApiKeyInfo]:
        """Return ``(api_key_id, secret, record)``; the secret is never retrievable again."""
        return self._api_keys.create(user_id, label, permissions, ip_allowlist)

    def list_api_keys(self, user_id: int) -> list[ApiKeyInfo]:
        """The user's unrevoked keys, newest first."""
        return self._api_keys.list_for_user(user_id)

    def delete_api_key(self, user_id: int, key_id: str) -> None:
        self._api_keys.delete(user_id, key_id)

    def authenticate_payload_signature(
        self, api_key: str, payload: bytes, signature: str, client_ip: str | None
    ) -> Principal:
        """Check an HMAC-SHA256 ``signature`` over ``payload`` made with the key's secret (for
        the Binance facade, which signs its own way; see ``ApiKeys.authenticate_payload``)."""
        return self._api_keys.authenticate_payload(api_key, payload, signature, client_ip)

    def api_key_principal(self, api_key: str, client_ip: str | None) -> Principal | None:
        """The owner of a usable key used from ``client_ip``, without a signature (see
        ``ApiKeys.principal``)."""
        return self._api_keys.principal(api_key, client_ip)

    def authenticate_signed_request(
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
        """Check a request signed per API.md (see ``cambist.accounts.signing``)."""
        return self._api_keys.authenticate(
            api_key,
            timestamp,
            signature,
            method,
            path_with_query,
            body,
            recv_window_ms,
            client_ip,
        )
