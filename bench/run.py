"""Run the urbis benchmark: `python -m bench.run [--quick] [--write-docs] ...` (`make bench`).

For each setup (SQLite in each durability mode; PostgreSQL with each number of workers)
starts `urbis serve` on a free loopback port and a fresh store, loads the entities by batch
upsert (timed: the batch-upsert figure), runs each wrk scenario for a fixed time, and prints
every figure with its ratio to /health of the same server in the same run. Results go to
bench/results/ as JSON; --write-docs also updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from bench import data, docs, pyspy, report
from bench.backends import POSTGRESQL, DatabaseUnavailable, Setup, fresh_database, server_info
from bench.cpu import Sample, usage
from bench.load import LoadError, load
from bench.loadgen import WrkError, WrkRun, ensure_wrk, run_wrk, wrk_version
from bench.machine import commit as machine_commit
from bench.machine import describe as describe_machine
from bench.options import MEASURED, options
from bench.scenarios import (
    HEALTH,
    HEALTH_LATENCY,
    SCENARIOS,
    Plan,
    ProbeError,
    Scenario,
    request,
)
from bench.scenarios import describe as describe_scenarios
from bench.server import Server, ServerError


def wrk_measure(wrk: str, scenario: Scenario, plan: Plan, server: Server, seconds: float
                ) -> dict[str, Any]:
    """One wrk run of a scenario, with its command line and the CPU it cost."""
    run = WrkRun(scenario.script, server.url, seconds, plan.threads, scenario.connections(plan),
                 scenario.args(plan))
    before = Sample.take(server.pid, server.database)
    result = run_wrk(wrk, run)
    result.update(usage(before, Sample.take(server.pid, server.database)))
    result["title"] = scenario.title
    result["command"] = shlex.join(run.command("wrk"))
    if scenario.batch:
        result["entities_per_s"] = round(result["requests_per_s"] * plan.batch_size, 1)
    return result


def measure(wrk: str, scenario: Scenario, plan: Plan, server: Server, args: argparse.Namespace,
            run: dict[str, Any], seconds: float | None = None, warmup: float = 0.0
            ) -> dict[str, Any] | None:
    """Probe, warm up and measure one scenario; None (and a problem noted) if it failed."""
    try:
        scenario.probe(server.port, plan)
        if warmup > 0:
            wrk_measure(wrk, scenario, plan, server, warmup)
        result = wrk_measure(wrk, scenario, plan, server, seconds or plan.duration)
    except (ProbeError, WrkError) as err:
        run["problems"].append(f"{scenario.name}: {err}")
        print(f"bench: {scenario.name} FAILED: {err}", file=sys.stderr, flush=True)
        server.check_alive()
        return None
    server.check_alive()
    if result["error_count"]:
        run["problems"].append(f"{scenario.name}: {result['error_count']} wrk errors "
                               f"(non-2xx answers or socket errors): {result['errors']}")
    print(f"bench: {scenario.name:<15} c={result['connections']:<3} "
          f"{result['requests_per_s']:>9,.0f} req/s  p95 {result['latency_ms']['p95']:8.2f} ms"
          f"  CPU: server {result.get('server_cpu_pct', '-')}%"
          + (f" db {result['db_cpu_pct']}%" if "db_cpu_pct" in result else "")
          + f" wrk {result.get('loadgen_cpu_pct', '-')}% others {result.get('other_cpu_pct', '-')}%"
          f"  errors {result['error_count']}",
          flush=True)
    return result


def others_busy(result: dict[str, Any] | None) -> bool:
    """Other processes used a good share of the CPU during the measurement."""
    return bool(result and result.get("others_busy"))


def measure_paired(wrk: str, scenario: Scenario, plan: Plan, server: Server,
                   args: argparse.Namespace, run: dict[str, Any]) -> dict[str, Any] | None:
    """/health at the same concurrency just before the scenario, then the scenario.

    Dividing by a baseline taken seconds earlier, rather than minutes, cancels most of the
    noise of a shared machine. With --retries, a pair during which other processes used the
    CPU is measured again; if every attempt was so, the fastest one is kept.
    """
    health = HEALTH_LATENCY if scenario.latency else HEALTH
    attempts: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for attempt in range(args.retries + 1):
        if attempt:
            print(f"bench: {scenario.name}: other processes were busy, measuring again",
                  flush=True)
        baseline = measure(wrk, health, plan, server, args, run,
                           seconds=max(1.0, plan.duration / 2))
        result = measure(wrk, scenario, plan, server, args, run, warmup=args.warmup)
        if result is None or baseline is None:
            return result
        attempts.append((baseline, result))
        if not (others_busy(baseline) or others_busy(result)):
            break
    else:
        attempts.sort(key=lambda pair: pair[1]["requests_per_s"])
    baseline, result = attempts[-1]
    result["attempts"] = len(attempts)
    result["health"] = {k: baseline[k] for k in ("requests_per_s", "latency_ms",
                                                 "connections", "seconds",
                                                 "server_cpu_pct", "other_cpu_pct")
                        if k in baseline}
    result["ratio_to_health"] = round(result["requests_per_s"] / baseline["requests_per_s"], 4)
    result["p95_ratio_to_health"] = round(
        result["latency_ms"]["p95"] / baseline["latency_ms"]["p95"], 2) \
        if baseline["latency_ms"]["p95"] else None
    if scenario.name in args.profile_names:
        profile(wrk, scenario, plan, server, args, run)
    return result


def profile(wrk: str, scenario: Scenario, plan: Plan, server: Server, args: argparse.Namespace,
            run: dict[str, Any]) -> None:
    """An extra run of the scenario under py-spy; the figures above stay unprofiled."""
    spy = start_profile(scenario.name, server, args, run, plan.duration)
    if spy is None:
        return
    time.sleep(0.5)
    wrk_measure(wrk, scenario, plan, server, plan.duration)
    finish_profile(scenario.name, *spy, run, seconds=plan.duration)


def start_profile(name: str, server: Server, args: argparse.Namespace, run: dict[str, Any],
                  seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Start py-spy on the server for `seconds` if `name` is to be profiled."""
    if name not in args.profile_names:
        return None
    py_spy = pyspy.find_py_spy()
    if py_spy is None:
        run["problems"].append("profile: py-spy not found; `.venv/bin/pip install py-spy`")
        return None
    out = args.results_dir / f"profile-{run['label']}-{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    return pyspy.start(py_spy, server.pid, seconds, out, subprocesses=server.workers > 1), out


def finish_profile(name: str, spy: subprocess.Popen[bytes], out: Path, run: dict[str, Any],
                   seconds: float) -> None:
    """Wait for py-spy, then print and keep its summary."""
    try:
        _, err = spy.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if spy.returncode != 0 or not out.exists():
        run["problems"].append(f"profile: py-spy failed: {err.decode(errors='replace')[-500:]}")
        return
    summary = pyspy.summarize(out, possible=round(pyspy.RATE * seconds))
    run.setdefault("profiles", {})[name] = {"raw": str(out), **summary}
    print(pyspy.format_summary(name, summary), flush=True)


def check_loaded(server: Server, plan: Plan, run: dict[str, Any]) -> None:
    """After the load, the last entity must be there."""
    path = f"/ngsi-ld/v1/entities/{data.entity_id(plan.entities - 1)}"
    status, body = request(server.port, "GET", path)
    if status != 200:
        run["problems"].append(f"load check: GET {path} answered {status}: {body[:300]!r}")


@contextlib.contextmanager
def start_server(setup: Setup, workdir: Path, args: argparse.Namespace) -> Iterator[Server]:
    """A server on a fresh store of the setup (a new database for PostgreSQL, then dropped)."""
    if setup.backend != POSTGRESQL:
        with Server(workdir, synchronous=setup.synchronous or "full") as server:
            yield server
        return
    with fresh_database(args.pg_url) as url, \
            Server(workdir, store=url, workers=setup.workers) as server:
        yield server


def run_mode(setup: Setup, wrk: str, plan: Plan, bodies: list[bytes], workdir: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    """A fresh server and store for one setup: load, then every scenario."""
    workdir.mkdir(parents=True)
    run: dict[str, Any] = {**setup.describe(), "scenarios": {}, "problems": [],
                           "loadavg_before": os.getloadavg()}
    print(f"bench: {setup.label}: starting urbis serve", flush=True)
    busy = run["loadavg_before"][0]
    if busy > 0.5:
        print(f"bench: warning: the machine is busy (load average {busy:.1f}); absolute "
              f"figures will be low, the ratios to /health less so", flush=True)
    run["commit"] = machine_commit()  # the code the server runs (src/ may change under us)
    with start_server(setup, workdir, args) as server:
        run["server_command"] = shlex.join(server.command())
        print(f"bench: loading {plan.entities:,} entities ({len(bodies)} upserts of "
              f"{plan.batch_size})", flush=True)
        spy = start_profile("load", server, args, run, seconds=600)  # stopped when done
        before = Sample.take(server.pid, server.database)
        run["load"] = load(server.port, bodies, plan.entities, args.load_connections)
        run["load"].update(usage(before, Sample.take(server.pid, server.database)))
        if spy is not None:
            spy[0].send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            finish_profile("load", *spy, run, seconds=run["load"]["seconds"])
        server.check_alive()
        print(f"bench: loaded in {run['load']['seconds']:.1f} s: "
              f"{run['load']['entities_per_s']:,.0f} entities/s (CPU: server "
              f"{run['load'].get('server_cpu_pct', '-')}%"
              + (f" db {run['load']['db_cpu_pct']}%" if "db_cpu_pct" in run["load"] else "")
              + ")", flush=True)
        check_loaded(server, plan, run)
        first = measure(wrk, HEALTH, plan, server, args, run, warmup=args.warmup)
        if first is not None:
            run["scenarios"]["health"] = first
        for name in (n for n in MEASURED if n in args.scenario_names):
            result = measure_paired(wrk, SCENARIOS[name], plan, server, args, run)
            if result is not None:
                run["scenarios"][name] = result
        end = measure(wrk, HEALTH, plan, server, args, run)
        if end is not None:
            end["title"] = "GET /health (again, at the end)"
            run["scenarios"]["health_end"] = end
    report.add_ratios(run)
    return run


def print_run(run: dict[str, Any]) -> None:
    """The two tables of one setup."""
    print(f"\n{run['title'].replace('`', '')}  (/health baseline "
          f"{run['health_rps'] or 0:,.0f} req/s)\n")
    print(report.text_table(report.SCENARIO_HEADER, report.scenario_rows(run)))
    print()
    print(report.text_table(report.TARGET_HEADER, report.target_rows(run)))
    for problem in run["problems"]:
        print(f"problem: {problem}")
    print(flush=True)


def command_line(argv: Sequence[str] | None) -> str:
    """The command as it was typed, with the URBIS_BENCH_* variables that were set."""
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = str(exe)
    env = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("URBIS_BENCH_")]
    return shlex.join([*env, shown, "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(143)  # unwinds through the finally blocks: the server is stopped


def new_result(argv: Sequence[str] | None, args: argparse.Namespace, plan: Plan,
               machine: dict[str, Any]) -> dict[str, Any]:
    """The result document, before any run: when, how, on what."""
    started = time.time()
    config = {k: getattr(args, k) for k in ("entities", "duration", "warmup", "threads",
                                            "connections", "latency_connections",
                                            "batch_size", "load_connections", "seed")}
    return {
        "started_epoch": started,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "command": command_line(argv),
        "machine": machine,
        "config": config | {"sync": args.sync_modes, "backends": args.backend_names,
                            "workers": args.worker_counts, "city_bbox": plan.city.bbox,
                            **describe_scenarios(plan)},
        "runs": [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every scenario ran without errors (and, with --check, met goals)."""
    args = options(argv, __doc__.splitlines()[0])
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        wrk = ensure_wrk()
    except WrkError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    city = data.City.for_entities(args.entities)
    top = Path(tempfile.mkdtemp(prefix="urbis-bench-", dir=args.workdir))
    bodies_file = top / "upsert-bodies.ndjson"
    plan = Plan(args.entities, args.duration, args.threads, args.connections,
                args.latency_connections, bodies_file, city, batch_size=args.batch_size,
                seed=args.seed)
    result = new_result(argv, args, plan, describe_machine(top, wrk_version(wrk)))
    try:
        if any(s.backend == POSTGRESQL for s in args.setups):
            result["machine"]["postgresql"] = server_info(args.pg_url)
        print(f"bench: preparing {args.entities:,} entities", flush=True)
        bodies = data.batches(args.entities, args.batch_size, seed=args.seed, city=city)
        updates = data.update_batches(args.entities, args.batch_size, bodies=50, city=city)
        bodies_file.write_bytes(b"\n".join(updates) + b"\n")
        for setup in args.setups:
            run = run_mode(setup, wrk, plan, bodies, top / setup.label, args)
            result["runs"].append(run)
            print_run(run)
    except (ServerError, LoadError, WrkError, OSError, asyncpg.PostgresError,
            DatabaseUnavailable) as err:
        print(f"bench: FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"bench: store and server logs kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    return finish(result, args)


def finish(result: dict[str, Any], args: argparse.Namespace) -> int:
    """Write the JSON result and the docs; the exit status."""
    result["seconds"] = round(time.time() - result["started_epoch"], 1)
    if not args.no_results:
        print(f"bench: result written to {report.write_json(result, args.results_dir)}")
    if args.write_docs:
        docs.update(result, args.docs)
        print(f"bench: {args.docs} updated")
    commits = {run["commit"] for run in result["runs"]} | {result["machine"]["commit"]}
    if len(commits) > 1:
        print(f"bench: warning: the code changed during the run ({', '.join(sorted(commits))})"
              "; the setups measured different code", file=sys.stderr)
    failed = any(run["problems"] for run in result["runs"])
    missed = any(t["met"] is False for run in result["runs"] for t in run["targets"])
    return 1 if failed or (args.check and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
