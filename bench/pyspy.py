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


def start(py_spy: str, pid: int, seconds: float, out: Path, rate: int = 250
          ) -> subprocess.Popen[bytes]:
    """Start `py-spy record` (collapsed stacks) on `pid` for `seconds`.

    Only samples of the thread holding the GIL are kept (`--gil`): with one worker, the GIL is
    the core that Python work shares, so these are the samples that cost throughput (waits on
    fsync or the network are left out).
    """
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
           "--rate", str(rate), "--format", "raw", "--gil", "--nonblocking",
           "--output", str(out)]
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
    return f"{match['func']} ({path}:{match['line']})" if match["line"] else \
        f"{match['func']} ({path})"


def summarize(raw: Path, top: int = 15, mine: str = "urbis/") -> dict[str, Any]:
    """Self and inclusive sample shares: of all frames, and of urbis' own frames."""
    self_all: Counter[str] = Counter()
    incl_mine: Counter[str] = Counter()
    self_mine: Counter[str] = Counter()
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
        own = [f for f in frames if mine in f]
        for frame in set(own):
            incl_mine[frame] += count
        if own:
            self_mine[own[-1]] += count  # innermost urbis frame: urbis code and what it calls

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)] \
            if total else []

    return {"samples": total, "self": share(self_all), "urbis_inclusive": share(incl_mine),
            "urbis_innermost": share(self_mine)}


def format_summary(name: str, summary: dict[str, Any]) -> str:
    """The summary as text for the console."""
    lines = [f"py-spy during {name}: {summary['samples']} samples of the GIL-holding thread"]
    for key, title in (("self", "self time, any code"),
                       ("urbis_inclusive", "inclusive, urbis functions"),
                       ("urbis_innermost", "innermost urbis frame (it + what it calls)")):
        lines.append(f"  {title}:")
        lines += [f"    {pct:5.1f}%  {frame}" for frame, pct in summary[key]]
    return "\n".join(lines)
