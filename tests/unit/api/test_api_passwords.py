from __future__ import annotations

import pytest

from api.auth.passwords import hash_password, password_needs_rehash, verify_password

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery staple"


def test_hash_is_argon2id_and_not_the_password() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_verify_accepts_the_right_password_and_rejects_others() -> None:
    hashed = hash_password(PASSWORD)
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "!", hashed)
    assert not verify_password("", hashed)


@pytest.mark.parametrize(
    "bad_hash",
    ["", "not-a-hash", "$argon2id$v=19$m=65536,t=3,p=4$garbage", "$2b$12$" + "x" * 53, PASSWORD],
)
def test_verify_returns_false_on_malformed_hash(bad_hash: str) -> None:
    assert verify_password(PASSWORD, bad_hash) is False


def test_current_hashes_need_no_rehash_but_garbage_does() -> None:
    assert not password_needs_rehash(hash_password(PASSWORD))
    assert password_needs_rehash("not-a-hash")


def test_hashing_pool_refuses_with_503_rather_than_queueing_without_bound() -> None:
    import threading

    import anyio

    from api.auth.passwords import HashingPool
    from api.errors import ServiceUnavailable

    pool = HashingPool(workers=1, max_waiting=1)
    release = threading.Event()
    results: list[str] = []

    def slow() -> str:
        release.wait(5)
        return "hashed"

    async def attempt() -> None:
        try:
            results.append(await pool.run(slow))
        except ServiceUnavailable as exc:
            results.append(f"503 retry {exc.retry_after}")

    async def burst() -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(4):
                tasks.start_soon(attempt)
            await anyio.sleep(0.2)
            release.set()

    anyio.run(burst)
    # One hashing, one waiting; the other two are refused at once, with Retry-After.
    assert sorted(results) == ["503 retry 2", "503 retry 2", "hashed", "hashed"]
