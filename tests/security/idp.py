"""A local identity provider for tests: real HTTP discovery + JWKS, keys made in the test."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class SigningKey:
    """A private key, its kid and algorithm."""

    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.alg.startswith("RS") else (
            jwt.algorithms.ECAlgorithm)
        jwk = json.loads(algo.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def rsa_key() -> SigningKey:
    return SigningKey(uuid.uuid4().hex[:8], "RS256",
                      rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key() -> SigningKey:
    return SigningKey(uuid.uuid4().hex[:8], "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Idp:
    """The provider's state: published keys, and how often its JWKS was fetched."""

    issuer: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    jwks_hits: int = 0

    def token(self, key: SigningKey | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.issuer, "aud": "urbis", "sub": "alice", "iat": now,
                "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid})


@contextmanager
def identity_provider(*keys: SigningKey) -> Iterator[Idp]:
    """Serve /.well-known/openid-configuration and /jwks.json on a free loopback port."""
    idp = Idp(keys=list(keys) or [rsa_key()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": idp.issuer, "jwks_uri": f"{idp.issuer}/jwks.json"}
            elif self.path == "/jwks.json":
                idp.jwks_hits += 1
                body = {"keys": [k.public_jwk() for k in idp.keys]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    idp.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
