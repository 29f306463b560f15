"""Access tokens from an OpenID Connect provider: JWTs checked against the provider's JWKS.

The JWKS address comes from the issuer's discovery document; keys are cached (PyJWT's
`PyJWKClient`) and fetched again when a token names a key id the cache does not hold, so a
key rotation at the provider needs no restart.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import jwt

from chat_server.errors import ServiceError

log = logging.getLogger("chat_server.access")


class TokenRefused(ServiceError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(
            None, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


def discover(issuer: str, timeout_s: float) -> dict[str, Any]:
    """The provider's discovery document, checked to name the configured issuer."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceError(503, f"OIDC discovery at {url} failed: {exc}", retry_after_s=5) from exc
    if doc.get("issuer") != issuer:
        raise ServiceError(
            503, f"OIDC discovery at {url} names issuer {doc.get('issuer')!r}, not {issuer!r}"
        )
    return doc


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        algorithms: list[str],
        *,
        timeout_s: float = 5.0,
        jwks_cache_s: float = 300.0,
        leeway_s: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.timeout_s = timeout_s
        self.jwks_cache_s = jwks_cache_s
        self.leeway_s = leeway_s
        self._jwks: jwt.PyJWKClient | None = None
        self._guard = threading.Lock()

    def _client(self) -> jwt.PyJWKClient:
        with self._guard:
            if self._jwks is None:
                doc = discover(self.issuer, self.timeout_s)
                self._jwks = jwt.PyJWKClient(
                    doc["jwks_uri"],
                    cache_keys=True,
                    lifespan=self.jwks_cache_s,
                    timeout=self.timeout_s,
                    cooldown_duration=5,
                )
            return self._jwks

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims when signature, issuer, audience and expiry hold; else 401."""
        client = self._client()
        try:
            key = client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceError(503, f"the provider's JWKS is unreachable: {exc}", 5) from exc
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise TokenRefused(f"access token refused: {exc}") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRefused("access token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRefused(f"access token is not for audience {self.audience!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(f"access token refused: {exc}") from exc
        return claims
