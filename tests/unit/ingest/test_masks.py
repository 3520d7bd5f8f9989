from __future__ import annotations

import pytest

from ingest.masks import MASK, mask_url, scrub, secret_paths, url_secrets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw1@db:5432/x", "postgresql://u:***@db:5432/x"),
        (
            "postgresql://u@db/x?password=TOPSECRET&sslmode=require",
            "postgresql://u@db/x?password=***&sslmode=require",
        ),
        (
            "mongodb://u:pw2@h1:27017,h2:27017/db?replicaSet=rs",
            "mongodb://u:***@h1:27017,h2:27017/db?replicaSet=rs",
        ),
        (
            "https://bot:tok@api.example.com/v1?api_key=abc&page=2",
            "https://bot:***@api.example.com/v1?api_key=***&page=2",
        ),
        ("just-a-secret-string", MASK),
    ],
)
def test_urls_are_masked_whatever_their_kind(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_driver_messages_are_scrubbed_of_every_secret_part() -> None:
    url = "postgresql://u:p%40ss@db/x?sslpassword=kp9"
    secrets = url_secrets(url)
    assert set(secrets) == {"p@ss", "kp9"}
    text = 'connection to "db" failed: password "p@ss" / p%40ss rejected, sslpassword=kp9'
    assert "p@ss" not in scrub(text, secrets)
    assert "kp9" not in scrub(text, secrets)


def test_secrets_are_found_under_any_secret_looking_key() -> None:
    client = {
        "base_url": "https://api.example.com",
        "auth": {"type": "api_key", "name": "key", "location": "header", "api_key": "k1"},
        "headers": {"X-API-Key": "k2", "Accept": "application/json", "Authorization": "Bearer t"},
        "paginator": {"type": "cursor", "cursor_param": "after"},
    }
    found = dict(secret_paths(client))
    assert found == {
        ("auth", "api_key"): "k1",
        ("headers", "X-API-Key"): "k2",
        ("headers", "Authorization"): "Bearer t",
    }
