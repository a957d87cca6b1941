"""The generated part of docs/benchmarks.md: machine, command, targets and scenario tables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.report import (
    DOCS_END,
    DOCS_START,
    SCENARIO_HEADER,
    markdown_table,
    scenario_rows,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _machine(m: dict[str, Any]) -> str:
    rows = [
        ["CPU", f"{m['cpu']} ({m['cores']} cores)"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["SQLite", m["sqlite"]],
        ["store file system", m["store_filesystem"]],
        ["load generator", f"{m['wrk']}, same machine, loopback"],
        ["urbis", f"{m['urbis']} at commit `{m['commit']}`"],
    ]
    return markdown_table(["machine", ""], rows).replace("| ---: |", "| --- |")


def _targets(runs: list[dict[str, Any]]) -> str:
    header = ["target", "goal"]
    for run in runs:
        mode = run["synchronous"]
        header += [f"{mode}", f"{mode}: x /health", f"{mode}: met"]
    rows = []
    for i, target in enumerate(runs[0]["targets"]):
        digits = 2 if target["unit"] == "ms" else 0
        row = [target["title"], f"{target['op']} {target['goal']:,.0f} {target['unit']}"]
        for run in runs:
            t = run["targets"][i]
            value = "-" if t["value"] is None else f"{t['value']:,.{digits}f}"
            ratio = "-" if t["ratio_to_health"] is None else f"{t['ratio_to_health']:.3f}"
            met = ("-" if t["met"] is None else "yes" if t["met"] else
                   f"**no** (needs {t['needs_factor']:.2f}x)")
            row += [value, ratio, met]
        rows.append(row)
    return markdown_table(header, rows)


def section(result: dict[str, Any]) -> str:
    """The generated markdown, between the markers."""
    cfg = result["config"]
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(result["started_epoch"]))
    parts = [
        DOCS_START,
        "",
        f"Measured {when} in {result.get('seconds', 0) / 60:.0f} minutes; "
        f"{cfg['entities']:,} entities loaded, {cfg['duration']:g} s per "
        f"scenario after {cfg['warmup']:g} s of warm-up, wrk with {cfg['threads']} thread(s) "
        f"and {cfg['connections']} connections ({cfg['latency_connections']} for the latency "
        f"scenarios), one server worker. Command:",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        _machine(result["machine"]),
        "",
        "### Targets",
        "",
        _targets(result["runs"]),
        "",
        "*x /health*: throughput divided by that of `GET /health` at the same concurrency "
        "just before; for the query, its p95 divided by the p95 of `GET /health` at the same "
        "concurrency.",
        "",
    ]
    for run in result["runs"]:
        load = run.get("loadavg_before", [0.0])[0]
        busy = (f" The machine was not idle: load average {load:.1f} before the server started "
                f"(other jobs running); see the *machine CPU %* column.") if load > 0.5 else ""
        if run.get("commit", result["machine"]["commit"]) != result["machine"]["commit"]:
            busy += f" The server ran commit `{run['commit']}`."
        parts += [f"### All figures, `URBIS_SQLITE_SYNCHRONOUS={run['synchronous']}`", "",
                  f"`/health` baseline: {run['health_rps'] or 0:,.0f} requests/s "
                  f"(mean of the runs before and after the scenarios).{busy}", "",
                  markdown_table(SCENARIO_HEADER, scenario_rows(run)), ""]
        for problem in run.get("problems", []):
            parts.append(f"- problem: {problem}")
        if run.get("problems"):
            parts.append("")
    parts.append(DOCS_END)
    return "\n".join(parts)


def update(result: dict[str, Any], path: Path = DOCS) -> None:
    """Replace the generated section of docs/benchmarks.md (appended if missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    new = section(result)
    start, end = text.find(DOCS_START), text.find(DOCS_END)
    if start != -1 and end > start:
        text = text[:start] + new + text[end + len(DOCS_END):]
    else:
        text = text.rstrip("\n") + "\n\n## Latest results\n\n" + new + "\n"
    path.write_text(text)
