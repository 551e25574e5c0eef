"""Password hashing with argon2id, and the password rules.

Verification always costs one argon2 computation, also for an email nobody registered (we then
verify against a dummy hash), so the response time does not reveal which emails exist.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cambist.accounts.errors import InvalidInput

PASSWORD_LENGTH_MIN = 8
PASSWORD_LENGTH_MAX = 128  # also bounds the hashing work an attacker can ask for


def validate_password(password: str) -> None:
    if not isinstance(password, str) or not (PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX):
        raise InvalidInput(
            f"the password must be {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters",
            code="INVALID_PASSWORD",
        )


class Passwords:
    """Hash and verify passwords. Pass cheaper argon2 parameters in tests only."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher if hasher is not None else argon2.PasswordHasher()
        # Hashed once with the same parameters as real hashes, so a dummy verification takes
        # as long as a real one.
        self._dummy_hash = self._hasher.hash("dummy password for absent users")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Constant-time check (inside argon2); False for a mismatch or a corrupt hash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification, for a user that does not exist."""
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def fast_passwords_for_tests() -> Passwords:
    """Cheap argon2 parameters: tests hash many passwords; never use this in production."""
    return Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
