"""Encryption at rest of the payloads of encrypted remote-config flags, as PostHog stores them.

With `has_encrypted_payloads`, every value in a flag's `filters.payloads` is stored as a Fernet token
(AES-128-CBC with HMAC-SHA256, `cryptography`) of the payload's JSON text. Only a caller holding a
secret (a personal API key with `feature_flag:read`, or the project's secret API key) ever sees the
plain payload: the management API and the `remote_config` endpoint decrypt it, and SDK delivery
(`/flags`, definitions) leaves encrypted remote-config flags out entirely.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Separates these keys from every other use of the same secret (API key digests, session signing).
KEY_DERIVATION_LABEL = b"experiments-api flag payload encryption v1"


class PayloadDecryptionError(Exception):
    """A stored payload is not a token any configured secret can open (the secrets changed)."""


def fernet_key(secret: str) -> bytes:
    """The Fernet key for one configured secret: 32 bytes derived with HMAC-SHA256, base64url."""
    digest = hmac.new(secret.encode(), KEY_DERIVATION_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


@cache
def _codec(secrets: tuple[str, ...]) -> MultiFernet:
    if not secrets:
        raise ImproperlyConfigured("Encrypted flag payloads need FLAG_PAYLOAD_SECRETS or SECRET_KEY.")
    return MultiFernet([Fernet(fernet_key(secret)) for secret in secrets])


def payload_codec() -> MultiFernet:
    return _codec(tuple(settings.FLAG_PAYLOAD_SECRETS))


def encrypt_payload(payload: str) -> str:
    return payload_codec().encrypt(payload.encode()).decode()


def decrypt_payload(token: Any) -> str:
    try:
        return payload_codec().decrypt(str(token).encode()).decode()
    except InvalidToken as error:
        raise PayloadDecryptionError from error


REDACTED_PAYLOAD = '"********* (encrypted)"'


def encrypted_payloads(plain: Mapping[str, str], *, stored: Mapping[str, Any]) -> dict[str, str]:
    """`plain` payloads as an encrypted flag stores them. A payload equal to what the token already
    `stored` under its key holds keeps that token, so saving an unchanged flag changes nothing."""
    tokens = {}
    for key, payload in plain.items():
        token = stored.get(key)
        tokens[key] = token if token is not None and _opened(token) == payload else encrypt_payload(payload)
    return tokens


def readable_payloads(stored: Mapping[str, Any]) -> dict[str, str]:
    """An encrypted flag's payloads in plain text for a caller holding a secret; a token no configured
    secret opens (they changed since it was written) reads as PostHog's redacted placeholder."""
    return {key: _opened(token) or REDACTED_PAYLOAD for key, token in stored.items()}


def _opened(token: Any) -> str | None:
    try:
        return decrypt_payload(token)
    except PayloadDecryptionError:
        return None


def plain_filters(filters: Mapping[str, Any], *, encrypted: bool | None) -> dict[str, Any]:
    """A flag's `filters` with readable payloads (`readable_payloads`) when they are stored encrypted."""
    if not encrypted or not isinstance(filters.get("payloads"), dict):
        return dict(filters)
    return {**filters, "payloads": readable_payloads(filters["payloads"])}
