"""Run the urbis benchmark: `python -m bench.run [--quick] [--write-docs] ...` (`make bench`).

Starts `urbis serve` (one worker) on a free loopback port and a fresh SQLite store, loads the
entities by batch upsert (timed: the batch-upsert figure), runs each wrk scenario for a fixed
time, and prints every figure with its ratio to /health of the same server in the same run.
Results go to bench/results/ as JSON; --write-docs also updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import data, docs, pyspy, report
from bench.cpu import OTHERS_BUSY_PCT, Sample, usage
from bench.load import LoadError, load
from bench.loadgen import WrkError, WrkRun, ensure_wrk, run_wrk, wrk_version
from bench.machine import commit as machine_commit
from bench.machine import describe as describe_machine
from bench.scenarios import (
    HEALTH,
    HEALTH_LATENCY,
    ORDER,
    SCENARIOS,
    Plan,
    ProbeError,
    Scenario,
    request,
)
from bench.scenarios import describe as describe_scenarios
from bench.server import Server, ServerError

RESULTS = Path(__file__).resolve().parent / "results"
MEASURED = [n for n in ORDER if not n.startswith("health")]
QUICK = {"entities": 5000, "duration": 3.0, "warmup": 1.0, "sync": "full"}


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"URBIS_BENCH_{name.upper()}", default)


def build_parser() -> argparse.ArgumentParser:
    """Every option also reads URBIS_BENCH_<NAME> (e.g. URBIS_BENCH_DURATION=5 make bench)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", default=_env("quick", "") == "1",
                   help=f"small and short: {QUICK['entities']} entities, {QUICK['duration']:g} s"
                        " per scenario, synchronous=full only (for smoke tests)")
    p.add_argument("--entities", type=int, default=None, help="entities to load (100000)")
    p.add_argument("--duration", type=float, default=None, help="seconds per scenario (10)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per scenario (2)")
    p.add_argument("--sync", default=None, help="SQLite synchronous modes to measure, each on "
                   "its own fresh server and store: full, normal or full,normal (full,normal)")
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
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--docs", type=Path, default=docs.DOCS, help=argparse.SUPPRESS)
    p.add_argument("--profile", default=_env("profile", ""),
                   help="comma-separated scenarios to sample with py-spy in an extra run "
                        "(e.g. patch_attr), or `load` to sample the initial load itself; "
                        "needs `pip install py-spy`")
    p.add_argument("--workdir", type=Path, default=None,
                   help="parent of the temporary store directory (system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the store and server logs")
    p.add_argument("--retries", type=int, default=int(_env("retries", 0)),
                   help="measure a scenario again (up to N times) when other processes used "
                        f"more than {OTHERS_BUSY_PCT}%% of a core meanwhile (0)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a target is missed (by default only errors fail)")
    return p


def options(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parsed options, with --quick and URBIS_BENCH_* defaults applied."""
    args = build_parser().parse_args(argv)
    full = {"entities": 100_000, "duration": 10.0, "warmup": 2.0, "sync": "full,normal"}
    base = QUICK if args.quick else full
    for key, kind in (("entities", int), ("duration", float), ("warmup", float), ("sync", str)):
        if getattr(args, key) is None:
            setattr(args, key, kind(_env(key, base[key])))
    args.sync_modes = [m.strip() for m in args.sync.split(",") if m.strip()]
    args.scenario_names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    args.profile_names = {n.strip() for n in args.profile.split(",") if n.strip()}
    bad = [m for m in args.sync_modes if m not in ("full", "normal")]
    unknown = [n for n in [*args.scenario_names, *args.profile_names]
               if n not in MEASURED and not (n == "load" and n in args.profile_names)]
    if bad or unknown or not args.sync_modes or args.entities < 2:
        build_parser().error(f"bad --sync {bad} / unknown scenarios {unknown} / entities")
    return args


def wrk_measure(wrk: str, scenario: Scenario, plan: Plan, server: Server, seconds: float
                ) -> dict[str, Any]:
    """One wrk run of a scenario, with its command line and the CPU it cost."""
    run = WrkRun(scenario.script, server.url, seconds, plan.threads, scenario.connections(plan),
                 scenario.args(plan))
    before = Sample.take(server.pid)
    result = run_wrk(wrk, run)
    result.update(usage(before, Sample.take(server.pid)))
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
          f" wrk {result.get('loadgen_cpu_pct', '-')}% others {result.get('other_cpu_pct', '-')}%"
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
    out = args.results_dir / f"profile-{run['synchronous']}-{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    return pyspy.start(py_spy, server.pid, seconds, out), out


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


def run_mode(mode: str, wrk: str, plan: Plan, bodies: list[bytes], workdir: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    """A fresh server and store in one synchronous mode: load, then every scenario."""
    workdir.mkdir(parents=True)
    run: dict[str, Any] = {"synchronous": mode, "scenarios": {}, "problems": [],
                           "loadavg_before": os.getloadavg()}
    print(f"bench: synchronous={mode}: starting urbis serve", flush=True)
    busy = run["loadavg_before"][0]
    if busy > 0.5:
        print(f"bench: warning: the machine is busy (load average {busy:.1f}); absolute "
              f"figures will be low, the ratios to /health less so", flush=True)
    run["commit"] = machine_commit()  # the code the server runs (src/ may change under us)
    with Server(workdir, synchronous=mode) as server:
        run["server_command"] = shlex.join(server.command())
        print(f"bench: loading {plan.entities:,} entities ({len(bodies)} upserts of "
              f"{plan.batch_size})", flush=True)
        spy = start_profile("load", server, args, run, seconds=600)  # stopped when done
        before = Sample.take(server.pid)
        run["load"] = load(server.port, bodies, plan.entities, args.load_connections)
        run["load"].update(usage(before, Sample.take(server.pid)))
        if spy is not None:
            spy[0].send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            finish_profile("load", *spy, run, seconds=run["load"]["seconds"])
        server.check_alive()
        print(f"bench: loaded in {run['load']['seconds']:.1f} s: "
              f"{run['load']['entities_per_s']:,.0f} entities/s", flush=True)
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
    """The two tables of one mode."""
    print(f"\nURBIS_SQLITE_SYNCHRONOUS={run['synchronous']}  (/health baseline "
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
        "config": config | {"sync": args.sync_modes, "city_bbox": plan.city.bbox,
                            **describe_scenarios(plan)},
        "runs": [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every scenario ran without errors (and, with --check, met goals)."""
    args = options(argv)
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
        print(f"bench: preparing {args.entities:,} entities", flush=True)
        bodies = data.batches(args.entities, args.batch_size, seed=args.seed, city=city)
        updates = data.update_batches(args.entities, args.batch_size, bodies=50, city=city)
        bodies_file.write_bytes(b"\n".join(updates) + b"\n")
        for mode in args.sync_modes:
            run = run_mode(mode, wrk, plan, bodies, top / mode, args)
            result["runs"].append(run)
            print_run(run)
    except (ServerError, LoadError, WrkError, OSError) as err:
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
              "; the modes measured different code", file=sys.stderr)
    failed = any(run["problems"] for run in result["runs"])
    missed = any(t["met"] is False for run in result["runs"] for t in run["targets"])
    return 1 if failed or (args.check and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
