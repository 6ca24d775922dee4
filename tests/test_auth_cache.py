"""Verified tokens are remembered per process, and that changes nothing they mean: a
remembered token still expires, a forged copy is still refused, and a token verified
under one secret is not taken under another."""

from __future__ import annotations

import types
import uuid
from datetime import timedelta

import jwt
import pytest

from liventix import auth
from liventix.auth import AuthError, Role, mint_token, viewer_from_token
from liventix.settings import Settings


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: object, **kwargs: object) -> object:
        calls.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counted)
    return calls


def test_a_token_is_verified_once_and_still_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = uuid.uuid4()
    token = mint_token(settings, user_id, Role.USER, ttl=timedelta(minutes=1))
    decodes = count_decodes(monkeypatch)
    for _ in range(3):
        assert viewer_from_token(token, settings).user_id == user_id
    assert decodes == [token]
    expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    later = types.SimpleNamespace(time=lambda: expires + auth.LEEWAY_SECONDS + 1)
    monkeypatch.setattr(auth, "time", later)
    with pytest.raises(AuthError) as refused:
        viewer_from_token(token, settings)
    assert refused.value.code == "TOKEN_EXPIRED"


def test_a_remembered_token_does_not_vouch_for_a_forged_copy(settings: Settings) -> None:
    token = mint_token(settings, uuid.uuid4(), Role.USER)
    viewer_from_token(token, settings)
    header, claims, signature = token.split(".")
    forged = f"{header}.{claims}.{signature[:-4]}AAAA"
    other_secret = settings.model_copy(update={"jwt_secret": "another-secret-" + "x" * 32})
    for attempt, under in ((forged, settings), (token, other_secret)):
        with pytest.raises(AuthError):
            viewer_from_token(attempt, under)
