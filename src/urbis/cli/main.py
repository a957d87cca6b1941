"""The `urbis` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from urbis.cli import apikey, audit, config, db, feed, iot, transfer
from urbis.settings import SettingsError, load_settings, sources


def build_parser() -> argparse.ArgumentParser:
    """Arguments of every sub-command."""
    parser = argparse.ArgumentParser(prog="urbis", description="urbis city data platform")
    parser.add_argument("--config", help="TOML file of settings (URBIS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the NGSI-LD broker")
    serve.add_argument("--host", help="listen address (URBIS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (URBIS_PORT, default 1026)")
    serve.add_argument("--store", help="store URL (URBIS_STORE, default "
                                       "sqlite:///./urbis-data/urbis.db)")
    serve.add_argument("--demo", action="store_true",
                       help="load sample Smart Data Models entities at start")
    serve.add_argument("--workers", type=int, help="worker processes (URBIS_WORKERS, default "
                                                   "1; more need a postgresql:// store)")
    serve.add_argument("--certfile", help="serve HTTPS with this PEM certificate "
                                          "(URBIS_TLS_CERTFILE)")
    serve.add_argument("--keyfile", help="private key of --certfile (URBIS_TLS_KEYFILE)")
    db.add_parsers(sub)
    transfer.add_parsers(sub)
    serve.add_argument("--no-auth", action="store_true",
                       help="DEVELOPMENT ONLY: no credentials needed, every caller is admin")
    config.add_parsers(sub)
    apikey.add_parsers(sub)
    audit.add_parsers(sub)
    feed.add_parsers(sub)
    iot.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    flags = {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
             "store": getattr(args, "store", None), "workers": getattr(args, "workers", None),
             "tls_certfile": getattr(args, "certfile", None),
             "tls_keyfile": getattr(args, "keyfile", None), "config": args.config,
             "auth": False if getattr(args, "no_auth", False) else None}
    try:  # only `serve` has --host, --port...; most commands have --store
        settings = load_settings(**flags)
    except SettingsError as err:
        print(f"urbis: bad configuration: {err}", file=sys.stderr)
        return 2
    if args.command == "config":
        return config.main(settings, args, sources(**flags))
    if args.command == "serve":
        from urbis.cli.serve import serve

        return serve(settings, demo=args.demo)
    if args.command == "db":
        return db.main(settings, args)
    if args.command == "apikey":
        return apikey.main(settings, args)
    if args.command == "audit":
        return audit.main(settings, args)
    if args.command == "feed":
        return feed.main(settings, args)
    if args.command == "iot":
        return iot.main(settings, args)
    if args.command in ("export", "import"):
        return transfer.main(settings, args)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
