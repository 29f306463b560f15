"""From a bearer credential to a principal: the shared key, a personal token or an OIDC JWT."""

from __future__ import annotations

import hmac
import logging

from chat_server.access.oidc import OidcVerifier, TokenRefused
from chat_server.access.principal import ADMIN, Principal, RoleMapping, claim_values
from chat_server.access.store import AccessStore, KnownUser, split_token
from chat_server.settings import Settings

log = logging.getLogger("chat_server.access")
NO_CREDENTIAL = (
    "missing or wrong credential: send Authorization: Bearer <API key, access token "
    "or personal token>"
)


def key_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of the whole key."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Authenticator:
    def __init__(self, settings: Settings, store: AccessStore | None) -> None:
        assert settings.chat_api_key is not None
        self.api_key = settings.chat_api_key.get_secret_value()
        self.settings = settings
        self.store = store
        self.mapping = RoleMapping.parse(settings.auth_role_map, settings.auth_default_roles)
        self.verifier = (
            OidcVerifier(
                settings.oidc_issuer,
                settings.oidc_api_audience,
                settings.oidc_algorithm_list,
                jwks_cache_s=settings.oidc_jwks_cache_s,
                leeway_s=settings.oidc_leeway_s,
            )
            if settings.oidc_issuer
            else None
        )
        self._seen: dict[str, KnownUser] = {}

    def user_from_claims(self, claims: dict) -> Principal:
        s = self.settings
        groups = claim_values(claims, s.oidc_groups_claim)
        roles = self.mapping.roles_for(groups | claim_values(claims, s.oidc_roles_claim))
        name = str(claims.get(s.oidc_name_claim) or claims.get("sub"))
        return Principal(
            subject=str(claims["sub"]),
            via="oidc",
            groups=groups,
            roles=roles,
            name=name,
            claims=claims,
        )

    def resolve(self, token: str | None) -> Principal:
        """The principal a bearer credential names; 401 for anything else."""
        if not token:
            raise TokenRefused(NO_CREDENTIAL)
        if key_matches(token, self.api_key):
            return ADMIN
        if split_token(token) is not None:
            return self._personal(token)
        if self.verifier is None or token.count(".") != 2:
            raise TokenRefused(NO_CREDENTIAL)
        principal = self.user_from_claims(self.verifier.verify(token))
        self._remember(principal)
        return principal

    def _personal(self, token: str) -> Principal:
        record = self.store.check_token(token) if self.store is not None else None
        if record is None:
            raise TokenRefused("personal token unknown, expired or revoked")
        user = self.store.known_user(record.subject) if self.store is not None else None
        if user is None:
            raise TokenRefused("personal token of a user never seen: sign in again")
        # Groups and roles as the provider last said at sign-in, so a removed group takes
        # effect on the user's tokens at their next sign-in.
        return Principal(
            subject=user.subject,
            via="personal_token",
            groups=user.groups,
            roles=user.roles,
            scopes=record.scopes,
            name=user.name,
            token_id=record.id,
        )

    def _remember(self, principal: Principal) -> None:
        user = KnownUser(principal.subject, principal.name, principal.groups, principal.roles)
        if self.store is None or self._seen.get(user.subject) == user:
            return
        self.store.remember_user(user)
        self._seen[user.subject] = user
