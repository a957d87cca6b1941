"""The options of `python -m bench.run`; each also reads URBIS_BENCH_<NAME> from the environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import docs
from bench.backends import BACKENDS, DEFAULT_PG_URL, check_url, setups
from bench.cpu import OTHERS_BUSY_PCT
from bench.scenarios import ORDER

RESULTS = Path(__file__).resolve().parent / "results"
MEASURED = [n for n in ORDER if not n.startswith("health")]
FULL = {"entities": 100_000, "duration": 10.0, "warmup": 2.0, "sync": "full,normal",
        "backends": "sqlite,pg"}
QUICK = {"entities": 5000, "duration": 3.0, "warmup": 1.0, "sync": "full", "backends": "sqlite"}


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"URBIS_BENCH_{name.upper()}", default)


def build_parser(doc: str) -> argparse.ArgumentParser:
    """Every option also reads URBIS_BENCH_<NAME> (e.g. URBIS_BENCH_DURATION=5 make bench)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=doc)
    p.add_argument("--quick", action="store_true", default=_env("quick", "") == "1",
                   help=f"small and short: {QUICK['entities']} entities, {QUICK['duration']:g} s"
                        " per scenario, SQLite synchronous=full only (for smoke tests)")
    p.add_argument("--entities", type=int, default=None, help="entities to load (100000)")
    p.add_argument("--duration", type=float, default=None, help="seconds per scenario (10)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per scenario (2)")
    p.add_argument("--backends", default=None,
                   help="stores to measure, comma-separated: sqlite, pg (sqlite,pg; "
                        "--quick: sqlite)")
    p.add_argument("--sync", default=None, help="SQLite synchronous modes to measure, each on "
                   "its own fresh server and store: full, normal or full,normal (full,normal)")
    p.add_argument("--workers", default=_env("workers", "1,2"),
                   help="`urbis serve --workers` of the PostgreSQL runs, comma-separated; "
                        "each on its own fresh server and database (1,2)")
    p.add_argument("--pg-url", default=_env("pg_url", DEFAULT_PG_URL),
                   help="PostgreSQL server of the pg runs; each run creates a database named "
                        "after the URL's plus _<pid>_<time>, and drops it at the end "
                        f"({DEFAULT_PG_URL})")
    p.add_argument("--store", default=_env("store", None),
                   help="measure one store only: `sqlite`, or a postgresql:// URL (as "
                        "--backends pg --pg-url URL)")
    p.add_argument("--scenarios", default=_env("scenarios", ",".join(MEASURED)),
                   help=f"comma-separated subset of {','.join(MEASURED)} (all)")
    p.add_argument("--threads", type=int, default=int(_env("threads", 1)), help="wrk threads (1)")
    p.add_argument("--connections", type=int, default=int(_env("connections", 32)),
                   help="wrk connections for the throughput scenarios (32)")
    p.add_argument("--latency-connections", type=int,
                   default=int(_env("latency_connections", 4)),
                   help="wrk connections for the query (latency) scenario (4)")
    p.add_argument("--batch-size", type=int, default=int(_env("batch_size", 100)),
                   help="entities per upsert request (100)")
    p.add_argument("--load-connections", type=int, default=int(_env("load_connections", 4)),
                   help="concurrent requests of the initial load (4)")
    p.add_argument("--seed", type=int, default=int(_env("seed", 7)), help="random seed (7)")
    p.add_argument("--results-dir", type=Path, default=Path(_env("results_dir", RESULTS)),
                   help="where the JSON result goes (bench/results)")
    p.add_argument("--no-results", action="store_true", help="do not write a JSON result")
    p.add_argument("--write-docs", action="store_true",
                   help="update the results sections of docs/benchmarks.md of the backends "
                        "measured")
    p.add_argument("--docs", type=Path, default=docs.DOCS, help=argparse.SUPPRESS)
    p.add_argument("--profile", default=_env("profile", ""),
                   help="comma-separated scenarios to sample with py-spy in an extra run "
                        "(e.g. patch_attr), or `load` to sample the initial load itself; "
                        "needs `pip install py-spy`")
    p.add_argument("--workdir", type=Path, default=None,
                   help="parent of the temporary store directory (system temp dir)")
    p.add_argument("--keep", action="store_true",
                   help="keep the SQLite stores and server logs (PostgreSQL databases are "
                        "always dropped)")
    p.add_argument("--retries", type=int, default=int(_env("retries", 0)),
                   help="measure a scenario again (up to N times) when other processes used "
                        f"more than {OTHERS_BUSY_PCT}%% of a core meanwhile (0)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a target is missed (by default only errors fail)")
    return p


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _store(args: argparse.Namespace) -> None:
    """--store: one backend only."""
    if args.store is None:
        return
    if args.store == "sqlite":
        args.backends = "sqlite"
    else:
        args.backends, args.pg_url = "pg", args.store


def options(argv: Sequence[str] | None, doc: str) -> argparse.Namespace:
    """Parsed options, with --quick and URBIS_BENCH_* defaults applied."""
    parser = build_parser(doc)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    for key, kind in (("entities", int), ("duration", float), ("warmup", float), ("sync", str),
                      ("backends", str)):
        if getattr(args, key) is None:
            setattr(args, key, kind(_env(key, base[key])))
    _store(args)
    args.sync_modes = _split(args.sync)
    args.backend_names = _split(args.backends)
    args.scenario_names = _split(args.scenarios)
    args.profile_names = set(_split(args.profile))
    bad = [m for m in args.sync_modes if m not in ("full", "normal")]
    bad += [b for b in args.backend_names if b not in BACKENDS]
    unknown = [n for n in [*args.scenario_names, *args.profile_names]
               if n not in MEASURED and not (n == "load" and n in args.profile_names)]
    try:
        args.worker_counts = [int(n) for n in _split(args.workers)]
    except ValueError:
        args.worker_counts = []
    if bad or unknown or not args.sync_modes or args.entities < 2 or not args.backend_names:
        parser.error(f"bad --sync/--backends {bad} / unknown scenarios {unknown} / entities")
    if not args.worker_counts or min(args.worker_counts) < 1:
        parser.error(f"--workers must be positive numbers, got {args.workers!r}")
    args.setups = setups(args.backend_names, args.sync_modes, args.worker_counts)
    if any(s.backend == "postgresql" for s in args.setups) and check_url(args.pg_url):
        parser.error(str(check_url(args.pg_url)))
    return args
