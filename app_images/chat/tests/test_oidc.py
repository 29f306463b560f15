"""The API's identity-provider path against a real OpenID provider (npm `oidc-provider`).

Tokens come from the provider's own authorization code flow (PKCE, its sign-in form); the API
checks them against the provider's JWKS, found through its discovery document.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chat_server.api import create_app
from chat_server.llm_client import LLMClient
from tests.conftest import AUTH, new_kb_name
from tests.oidc_provider import API_AUDIENCE, OidcProvider
from tests.stub_llm import ServerThread

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])


def client(client_id: str) -> dict:
    return {
        "client_id": client_id,
        "client_secret": f"secret-of-{client_id}",
        "redirect_uris": ["http://127.0.0.1:9/auth/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


CLIENT = client("chat-test")
SHORT = client("chat-short")  # its access tokens live 1 s (provider.mjs)


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    users = {"alice": ["staff", "team-x"], "bob": ["staff"]}
    with OidcProvider(tmp_path_factory.mktemp("oidc"), [CLIENT, SHORT], users) as p:
        yield p


@pytest.fixture()
def api(stack, provider):
    settings = stack.settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT["client_id"],
            "oidc_audience": API_AUDIENCE,
            "oidc_leeway_s": 0.0,
        }
    )
    app = create_app(settings, stack.service, LLMClient(settings.llm_base_url, "k", "m", 5, 1))
    with ServerThread(app) as server:
        yield server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(api, token: str) -> httpx.Response:
    return httpx.get(f"{api.url}/auth/me", headers=bearer(token), timeout=30)


def test_a_real_access_token_is_accepted_with_its_groups(api, provider):
    tokens = provider.sign_in("alice", CLIENT)
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["aud"] == (
        API_AUDIENCE
    )
    r = me(api, tokens["access_token"])
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["subject"] == "alice"
    assert set(data["groups"]) == {"staff", "team-x"}


def test_the_id_token_is_not_an_access_token(api, provider):
    tokens = provider.sign_in("alice", CLIENT)  # its aud is the client id, not the API
    r = me(api, tokens["id_token"])
    assert r.status_code == 401
    assert "audience" in r.json()["msg"]


def test_a_token_for_another_audience_is_refused(api, provider):
    tokens = provider.sign_in("alice", CLIENT, resource="urn:another:api")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "urn:another:api"
    r = me(api, tokens["access_token"])
    assert r.status_code == 401
    assert API_AUDIENCE in r.json()["msg"]


def test_an_expired_token_is_refused(api, provider):
    token = provider.sign_in("bob", SHORT)["access_token"]
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    while time.time() <= exp + 1:  # wait for the provider's 1 s lifetime to pass
        time.sleep(0.5)
    r = me(api, token)
    assert r.status_code == 401
    assert "expired" in r.json()["msg"]


def test_a_forged_signature_is_refused(api, provider):
    token = provider.sign_in("bob", CLIENT)["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    # The same claims (groups widened) under the provider's key id, signed by another key.
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims["groups"] = ["staff", "team-x"]
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": header["kid"]})
    assert me(api, token).status_code == 200
    r = me(api, forged)
    assert r.status_code == 401
    assert "signature" in r.json()["msg"].lower()
    # The provider's real signature over altered claims fails too.
    head, _, sig = token.split(".")
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    r = me(api, f"{head}.{altered}.{sig}")
    assert r.status_code == 401


def test_a_removed_group_takes_access_away_with_the_next_token(api, provider):
    name = new_kb_name()
    admin = httpx.Client(base_url=api.url, headers=AUTH, timeout=60)
    assert admin.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}
    ).is_success
    grant = {"knowledge_base_name": name, "kind": "group", "principal": "team-x", "role": "reader"}
    assert admin.post("/knowledge_base/grant_permission", json=grant).is_success
    carol = ["staff", "team-x"]
    provider.set_users({"alice": ["staff", "team-x"], "bob": ["staff"], "carol": carol})
    try:
        before = provider.sign_in("carol", CLIENT)["access_token"]
        params = {"knowledge_base_name": name}
        r = httpx.get(f"{api.url}/knowledge_base/list_files", params=params, headers=bearer(before))
        assert r.status_code == 200, r.text
        provider.set_users({"alice": ["staff", "team-x"], "bob": ["staff"], "carol": ["staff"]})
        after = provider.sign_in("carol", CLIENT)["access_token"]
        assert jwt.decode(after, options={"verify_signature": False})["groups"] == ["staff"]
        r = httpx.get(f"{api.url}/knowledge_base/list_files", params=params, headers=bearer(after))
        assert r.status_code == 404, r.text
    finally:
        provider.set_users({"alice": ["staff", "team-x"], "bob": ["staff"]})


def test_a_revoked_personal_token_is_refused(api, provider):
    access = provider.sign_in("bob", CLIENT)["access_token"]
    made = httpx.post(
        f"{api.url}/auth/tokens", json={"name": "laptop"}, headers=bearer(access), timeout=30
    )
    assert made.status_code == 200, made.text
    personal, token_id = made.json()["data"]["token"], made.json()["data"]["id"]
    r = me(api, personal)
    assert r.status_code == 200 and r.json()["data"]["subject"] == "bob"
    revoked = httpx.post(
        f"{api.url}/auth/tokens/revoke", json={"id": token_id}, headers=bearer(access), timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    r = me(api, personal)
    assert r.status_code == 401
    assert "revoked" in r.json()["msg"]
