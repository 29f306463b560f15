"""A real OpenID provider for the tests: the npm package `oidc-provider` as a Node.js process.

`tests/oidc/` holds its package.json and lock (installed by ci.sh with `npm ci`); `provider.mjs`
configures it: confidential clients, users with groups from a JSON file the test may edit,
JWT access tokens for the API's audience (resource indicators).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx

from tests.stub_llm import free_port

HERE = Path(__file__).parent / "oidc"
API_AUDIENCE = "urn:chat:api"


class OidcProvider:
    def __init__(self, tmp: Path, clients: list[dict], users: dict[str, list[str]]) -> None:
        if not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"run `npm ci` in {HERE} (ci.sh does) before the sign-in tests")
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.clients = clients
        self.users_file = tmp / "oidc-users.json"
        self.set_users(users)
        self.proc: subprocess.Popen | None = None

    def set_users(self, users: dict[str, list[str]]) -> None:
        self.users_file.write_text(json.dumps({u: {"groups": g} for u, g in users.items()}))

    def start(self) -> OidcProvider:
        node = shutil.which("node")
        assert node, "Node.js is needed for the sign-in tests"
        env = {
            "PATH": "/usr/bin:/bin",
            "PORT": str(self.port),
            "CLIENTS": json.dumps(self.clients),
            "USERS_FILE": str(self.users_file),
            "API_AUDIENCE": API_AUDIENCE,
            "SHORT_TTL_CLIENT": "chat-short",
        }
        self.proc = subprocess.Popen([node, "provider.mjs"], cwd=HERE, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                url = f"{self.issuer}/.well-known/openid-configuration"
                if httpx.get(url, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"oidc-provider on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sign_in(self, login: str, client: dict, resource: str | None = None) -> dict[str, str]:
        """The authorization code flow with PKCE as a browser walks it, without the browser:
        the provider's sign-in form is posted, the code exchanged. Returns the token response."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        redirect_uri = client["redirect_uris"][0]
        query = {
            "client_id": client["client_id"],
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid profile groups api",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if resource:
            query["resource"] = resource
        with httpx.Client(base_url=self.issuer, timeout=30) as browser:
            r = browser.get("/auth?" + urlencode(query))
            while r.is_redirect and not str(r.headers["location"]).startswith(redirect_uri):
                location = urljoin(str(r.url), r.headers["location"])
                if "/interaction/" in location:
                    page = browser.get(location).text
                    prompt = "consent" if 'value="consent"' in page else "login"
                    r = browser.post(
                        location, data={"prompt": prompt, "login": login, "password": "x"}
                    )
                    continue
                r = browser.get(location)
            assert r.is_redirect, r.text
            code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
            token = browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(client["client_id"], client["client_secret"]),
            )
            assert token.status_code == 200, token.text
            tokens: dict[str, str] = token.json()
            return tokens
