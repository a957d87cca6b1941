"""Optional py-spy sampling of the server during a scenario, summarised as urbis hot spots."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def find_py_spy() -> str | None:
    """py-spy next to the running Python, else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


RATE = 250  # samples per second


def start(py_spy: str, pid: int, seconds: float, out: Path, rate: int = RATE,
          subprocesses: bool = False) -> subprocess.Popen[bytes]:
    """Start `py-spy record` (collapsed stacks) on `pid` for `seconds`.

    Only samples of the thread holding the GIL are kept (`--gil`): with one worker, the GIL is
    the core that Python work shares, so these are the samples that cost throughput (waits on
    fsync or the network are left out). With `subprocesses` (several workers) the samples of
    every worker process are kept, together.
    """
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
           "--rate", str(rate), "--format", "raw", "--gil", "--nonblocking",
           "--output", str(out), *(["--subprocesses"] if subprocesses else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("/site-packages/", "/src/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"  # per function: line numbers would split its samples


def _package(frame: str) -> str:
    """Where a frame's code lives: urbis/<layer>, a third-party package, or the stdlib."""
    match = _FRAME.match(frame)
    path = match["file"] if match else frame
    if path.startswith("urbis/"):
        return "/".join(path.split("/")[:2])
    if ".py" not in path and not path.startswith("<"):
        return "(torn sample)"  # --nonblocking may read a stack while it changes
    head = path.split("/")[0]
    return head if "/" in path and not head.endswith(".py") else f"stdlib {path.split('.')[0]}"


def summarize(raw: Path, top: int = 15, mine: str = "urbis/", possible: int = 0
              ) -> dict[str, Any]:
    """Sample shares: self time by frame and by package, inclusive time of urbis functions.

    The entry frames (urbis/cli) are left out of the urbis figures: every sample has them.
    `possible` (rate x seconds) gives the share of the time some thread held the GIL; the
    rest is spent outside Python (SQLite, fsync, the network) or idle.
    """
    self_all: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    incl_mine: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += count
        self_all[frames[-1]] += count
        by_package[_package(frames[-1])] += count
        for frame in {f for f in frames if mine in f and "urbis/cli/" not in f}:
            incl_mine[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)] \
            if total else []

    gil = round(100 * total / possible) if possible else None
    return {"samples": total, "gil_held_pct": gil, "self": share(self_all),
            "self_by_package": share(by_package), "urbis_inclusive": share(incl_mine)}


def format_summary(name: str, summary: dict[str, Any]) -> str:
    """The summary as text for the console."""
    lines = [f"py-spy during {name}: {summary['samples']} samples of the GIL-holding thread "
             f"(GIL held {summary.get('gil_held_pct', '?')}% of the time)"]
    for key, title in (("self_by_package", "self time by package"),
                       ("self", "self time by function, any code"),
                       ("urbis_inclusive", "inclusive time of urbis functions")):
        lines.append(f"  {title}:")
        lines += [f"    {pct:5.1f}%  {frame}" for frame, pct in summary[key]]
    return "\n".join(lines)
