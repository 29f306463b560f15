"""Web UI sign-in through a real OpenID provider, in headless Chromium: code flow with PKCE,
the session cookie, the user's identity reaching the API, sign-out, and a forged callback."""

from __future__ import annotations

import httpx
import pytest

from chat_server.api import create_app
from chat_server.llm_client import LLMClient
from chat_server.webui.server import create_webui
from tests.conftest import API_KEY, make_settings
from tests.oidc_provider import API_AUDIENCE, OidcProvider
from tests.stub_llm import ServerThread, free_port

pytestmark = pytest.mark.parametrize("vs_type", ["faiss"])


@pytest.fixture()
def signin(stack, tmp_path, model_dir):
    """The provider, the API checking its tokens, and the web UI signing people in with it."""
    provider = OidcProvider(tmp_path, [], {"alice": ["staff"]})
    oidc = {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": "chat-webui",
        "oidc_client_secret": "webui-secret",
        "oidc_audience": API_AUDIENCE,
        "oidc_scopes": "openid profile groups api",
    }
    api_settings = stack.settings.model_copy(update=oidc)
    api_app = create_app(
        api_settings, stack.service, LLMClient(api_settings.llm_base_url, "k", "m", 5, 1)
    )
    with ServerThread(api_app) as api:
        settings = make_settings(
            tmp_path / "unused", "http://127.0.0.1:1", model_dir, api_base_url=api.url, **oidc
        )
        with ServerThread(create_webui(settings)) as ui:
            provider.clients = [
                {
                    "client_id": "chat-webui",
                    "client_secret": "webui-secret",
                    "redirect_uris": [f"{ui.url}/auth/callback"],
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ]
            with provider:
                ui.provider = provider
                ui.settings = settings
                yield ui


def test_sign_in_with_the_provider_reaches_the_api_as_the_user(signin, browser_page):
    page = browser_page
    page.goto(signin.url)
    page.wait_for_selector("#login-form:visible")
    page.click("#oidc-sign-in")
    # The provider's own sign-in form (oidc-provider's development interactions).
    page.wait_for_selector("input[name=login]")
    assert page.url.startswith(signin.provider.issuer)
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_selector("#app-main:visible")
    assert page.url.rstrip("/") == signin.url
    page.wait_for_selector("#signed-in-as:has-text('alice')")

    cookies = {c["name"]: c for c in page.context.cookies(signin.url)}
    session = cookies["chat_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert "chat_signin_flow" not in cookies or cookies["chat_signin_flow"]["value"] in ("", "null")
    assert page.evaluate("document.cookie") == ""
    # The proxy forwards the user's access token: the API sees alice, signed in by the provider.
    me = page.evaluate("fetch('/api/auth/me').then((r) => r.json())")
    assert me["data"]["subject"] == "alice"
    assert me["data"]["via"] == "oidc"
    assert me["data"]["groups"] == ["staff"]

    # A web UI process that does not hold alice's token (a restart, another replica) does not
    # take her still-signed cookie for an admin session.
    settings = signin.settings
    with ServerThread(create_webui(settings)) as other:
        r = httpx.get(
            f"{other.url}/api/auth/me", cookies={"chat_session": session["value"]}, timeout=30
        )
        assert r.status_code == 401, r.text
        assert (
            httpx.get(
                f"{other.url}/session", cookies={"chat_session": session["value"]}
            ).status_code
            == 401
        )

    page.click("#sign-out")
    page.wait_for_selector("#login-status[data-i18n=signedOut]")
    r = httpx.get(
        f"{signin.url}/api/auth/me", cookies={"chat_session": session["value"]}, timeout=30
    )
    assert r.status_code == 401


def test_a_callback_with_a_forged_state_is_refused(signin):
    with httpx.Client(base_url=signin.url, timeout=30) as browser:
        start = browser.get("/auth/login")
        assert start.status_code == 302, start.text
        location = start.headers["location"]
        assert "code_challenge=" in location and "code_challenge_method=S256" in location
        assert "nonce=" in location and "state=" in location
        r = browser.get("/auth/callback", params={"code": "stolen", "state": "forged"})
        assert r.status_code == 401
        assert "state" in r.json()["msg"]
        assert "chat_session" not in browser.cookies


def test_api_key_sign_in_still_works_with_a_provider_set(signin):
    with httpx.Client(base_url=signin.url, timeout=30) as browser:
        methods = browser.get("/auth/methods").json()
        assert methods["oidc"] is True
        r = browser.post("/login", json={"api_key": "wrong"})
        assert r.status_code == 401

        r = browser.post("/login", json={"api_key": API_KEY})
        assert r.status_code == 200
        assert browser.get("/session").json()["user"] == "admin"
        me = browser.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["data"]["via"] == "api_key"


def test_an_unreachable_provider_is_a_clear_502(vs_type, tmp_path, model_dir):
    port = free_port()  # nothing listens there
    settings = make_settings(
        tmp_path,
        "http://127.0.0.1:1",
        model_dir,
        oidc_issuer=f"http://127.0.0.1:{port}",
        oidc_client_id="chat-webui",
    )
    with ServerThread(create_webui(settings)) as ui:
        r = httpx.get(f"{ui.url}/auth/login", timeout=30)
        assert r.status_code == 502
        assert f"127.0.0.1:{port}" in r.json()["msg"]
        assert "chat_session" not in r.cookies
