"""What authentication costs: single-attribute PATCH and GET by id, auth off vs on.

One store, loaded once; then `urbis serve` is started alternately with auth off and with
auth on (an OIDC issuer served by this script on loopback: RS256 bearer tokens verified
against its JWKS on every request, plus the permission checks), and wrk runs the same
scenario against each. Off and on alternate `--rounds` times, so the machine's drift falls
on both; the figure is the ratio on / off of the summed throughputs.

    .venv/bin/python -m bench.auth_cost [--entities 5000] [--seconds 8] [--rounds 2]
        [--credential jwt|apikey] [--sync normal]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import data
from bench.load import load
from bench.loadgen import WrkRun, ensure_wrk, run_wrk
from bench.server import HOST, Server
from urbis.context.credentials import new_key

SCENARIOS = {"patch_attr": "patch_attr.lua", "get_entity": "get_entity.lua"}


@contextmanager
def issuer() -> Iterator[tuple[str, str]]:
    """A loopback OIDC issuer; yields (issuer URL, a bearer token valid for an hour)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "bench", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = jwks if self.path == "/jwks.json" else json.dumps(
                {"issuer": url, "jwks_uri": f"{url}/jwks.json"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    url = f"http://{HOST}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = int(time.time())
    token = jwt.encode({"iss": url, "aud": "urbis", "sub": "bench", "iat": now,
                        "exp": now + 3600, "roles": ["operator"], "tenants": ["*"]},
                       key, algorithm="RS256", headers={"kid": "bench"})
    try:
        yield url, token
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one JSON line per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--credential", choices=("jwt", "apikey"), default="jwt")
    parser.add_argument("--sync", choices=("full", "normal"), default="normal")
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    admin = new_key()[1]
    with tempfile.TemporaryDirectory(prefix="urbis-auth-bench-") as tmp, issuer() as (url, token):
        workdir = Path(tmp)
        with Server(workdir, synchronous=args.sync) as server:  # load with auth off
            load(server.port, data.batches(args.entities, 100), args.entities)
        header = f"Bearer {token}" if args.credential == "jwt" else f"Bearer {admin}"
        modes = {"off": ({"URBIS_AUTH": "false"}, None),
                 "on": ({"URBIS_AUTH": "true", "URBIS_ADMIN_KEY": admin,
                         "URBIS_OIDC_ISSUER": url}, header)}
        totals: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for mode, (env, auth) in modes.items():
                with Server(workdir, synchronous=args.sync, env=env) as server:
                    for name, script in SCENARIOS.items():
                        extra = (f"auth={auth}",) if auth else ()
                        run = WrkRun(script, server.url, args.seconds, 2, args.connections,
                                     (f"entities={args.entities}", "seed=7", *extra))
                        result = run_wrk(wrk, run)
                        if result["error_count"]:
                            raise SystemExit(f"{name} with auth {mode}: {result['errors']}")
                        totals.setdefault((name, mode), []).append(result["requests_per_s"])
    for name in SCENARIOS:
        off, on = sum(totals[(name, "off")]), sum(totals[(name, "on")])
        print(json.dumps({"scenario": name, "credential": args.credential,
                          "off_rps": [round(x) for x in totals[(name, "off")]],
                          "on_rps": [round(x) for x in totals[(name, "on")]],
                          "ratio_on_off": round(on / off, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
