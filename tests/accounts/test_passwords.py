from __future__ import annotations

import argon2
import pytest

from cambist.accounts.errors import InvalidInput
from cambist.accounts.passwords import Passwords, fast_passwords_for_tests, validate_password


@pytest.fixture
def passwords() -> Passwords:
    return fast_passwords_for_tests()


def test_hash_and_verify(passwords: Passwords) -> None:
    stored = passwords.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "correct horsE")


def test_corrupt_hash_is_a_mismatch_not_a_crash(passwords: Passwords) -> None:
    assert not passwords.verify("not a hash", "whatever1")
    assert passwords.needs_rehash("not a hash")


def test_dummy_verification_runs(passwords: Passwords) -> None:
    passwords.verify_dummy("anything at all")  # only must not raise


def test_needs_rehash_when_parameters_grow(passwords: Passwords) -> None:
    stored = passwords.hash("correct horse")
    assert not passwords.needs_rehash(stored)
    stronger = Passwords(argon2.PasswordHasher(time_cost=2, memory_cost=128, parallelism=1))
    assert stronger.needs_rehash(stored)


@pytest.mark.parametrize("password", ["a" * 8, "a" * 128, "ünïcødé!"])
def test_password_length_accepted(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize("password", ["", "a" * 7, "a" * 129])
def test_password_length_refused(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_password(password)
    assert caught.value.code == "INVALID_PASSWORD"
