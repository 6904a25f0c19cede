"""The harness: rows, groups, the registry, the results file and the summary table.

A *row* is one measured number::

    {"group": "protocol", "case": "one-way", "impl": "overt",
     "metric": "messages_per_s", "value": 1234.5, "unit": "msg/s"}

``impl`` is ``overt`` or the name of the peer implementation it is compared against. A *group*
is one module under :mod:`bench.groups` that exposes ``GROUP = Group(...)``; adding a module is
all it takes to register a new group. Each run of a group replaces that group's rows in the
results file and keeps every other group's rows.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

OVERT: Final = "overt"
"""The ``impl`` name of Overt's own rows."""

SPEEDUP_PREFIX: Final = "speedup_vs_"
"""Metric prefix of a ratio row: ``speedup_vs_<peer>`` (impl ``overt``, unit ``x``)."""

BENCH_DIR: Final = Path(__file__).resolve().parent
DEFAULT_RESULTS: Final = BENCH_DIR / "results.json"
ROW_KEYS: Final = ("group", "case", "impl", "metric", "value", "unit")
SIGNIFICANT_DIGITS: Final = 4


class BenchError(Exception):
    """A benchmark could not produce trustworthy numbers (setup failed, a check failed)."""


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    case: str
    impl: str
    metric: str
    value: float
    unit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "case": self.case,
            "impl": self.impl,
            "metric": self.metric,
            "value": round_significant(self.value),
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, obj: object) -> Row:
        if not isinstance(obj, dict) or set(obj) != set(ROW_KEYS):
            raise BenchError(f"not a result row (need exactly the keys {ROW_KEYS}): {obj!r}")
        value = obj["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BenchError(f"row value is not a number: {obj!r}")
        texts = [obj[k] for k in ROW_KEYS if k != "value"]
        if not all(isinstance(t, str) and t for t in texts):
            raise BenchError(f"row labels must be non-empty strings: {obj!r}")
        return cls(obj["group"], obj["case"], obj["impl"], obj["metric"], value, obj["unit"])

    def sort_key(self) -> tuple[str, str, str, int, str]:
        # Overt's row first, then its peers, so the file reads side by side.
        return (self.group, self.case, self.metric, 0 if self.impl == OVERT else 1, self.impl)


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float | int:
    """Round to ``digits`` significant digits; whole numbers stay ints (stable diffs)."""
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        raise BenchError(f"refusing to record a non-finite value: {value}")
    if value == 0:
        return 0
    rounded = round(value, digits - 1 - math.floor(math.log10(abs(value))))
    return int(rounded) if float(rounded).is_integer() else rounded


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=Row.sort_key)  # sorted() is stable


# ----------------------------------------------------------------------------- groups


@dataclass
class Context:
    """What a group gets when it runs: parameters and a progress printer."""

    group: str
    params: dict[str, str] = field(default_factory=dict)
    verbose: bool = True
    out: Callable[[str], None] = print
    used: dict[str, Any] = field(default_factory=dict)
    """The resolved value of every parameter the group asked for (recorded with the run)."""

    def progress(self, message: str) -> None:
        if self.verbose:
            self.out(f"[{self.group}] {message}")

    def int_param(self, name: str, default: int, env: str | None = None, minimum: int = 1) -> int:
        """``--param name=`` beats the environment variable ``env`` beats ``default``."""
        raw = self.params.get(name)
        source = f"--param {name}"
        if raw is None and env is not None:
            raw = os.environ.get(env)
            source = env
        if raw is None:
            self.used[name] = default
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise BenchError(f"{source}: not an integer: {raw!r}") from None
        if value < minimum:
            raise BenchError(f"{source}: must be at least {minimum}, got {value}")
        self.used[name] = value
        return value

    def str_param(self, name: str, default: str, env: str | None = None) -> str:
        raw = self.params.get(name)
        if raw is None and env is not None:
            raw = os.environ.get(env)
        value = default if raw is None else raw
        self.used[name] = value
        return value


@dataclass(frozen=True)
class Group:
    """One benchmark group. ``run`` returns rows whose ``group`` equals ``name``."""

    name: str
    description: str
    run: Callable[[Context], list[Row]]
    order: int = 100
    parameters: dict[str, str] = field(default_factory=dict)
    """Parameter name -> one-line help, for ``--list``."""


def discover_groups() -> dict[str, Group]:
    """Import every public module of :mod:`bench.groups` and collect its ``GROUP``."""
    package = importlib.import_module("bench.groups")
    found: list[Group] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.groups.{info.name}")
        group = getattr(module, "GROUP", None)
        if not isinstance(group, Group):
            raise BenchError(f"bench.groups.{info.name} does not define GROUP = Group(...)")
        found.append(group)
    found.sort(key=lambda g: (g.order, g.name))
    groups: dict[str, Group] = {}
    for group in found:
        if group.name in groups:
            raise BenchError(f"two modules register the group {group.name!r}")
        groups[group.name] = group
    return groups


def check_rows(group: str, rows: Sequence[Row]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        if row.group != group:
            raise BenchError(f"group {group!r} returned a row of group {row.group!r}")
        key = (row.case, row.impl, row.metric)
        if key in seen:
            raise BenchError(f"group {group!r} returned {key} twice")
        seen.add(key)
        row.to_json()  # rejects non-finite values


# ----------------------------------------------------------------------------- files


def load_rows(path: Path) -> list[Row]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not JSON ({exc}); move it aside and rerun") from None
    if not isinstance(data, list):
        raise BenchError(f"{path} is not a list of rows; move it aside and rerun")
    return [Row.from_json(item) for item in data]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def dump_rows(rows: Iterable[Row]) -> str:
    """One row per line, keys in schema order: diffs between runs stay line-by-line."""
    lines = [json.dumps(row.to_json(), ensure_ascii=False) for row in sort_rows(rows)]
    if not lines:
        return "[]\n"
    return "[\n  " + ",\n  ".join(lines) + "\n]\n"


def replace_group_rows(path: Path, group: str, rows: Sequence[Row]) -> list[Row]:
    """Rewrite ``path`` with ``group``'s rows replaced by ``rows``; return everything."""
    kept = [row for row in load_rows(path) if row.group != group]
    merged = sort_rows([*kept, *rows])
    _write_atomically(path, dump_rows(merged))
    return merged


def environment() -> dict[str, Any]:
    """Facts about the machine and software that a number depends on."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": {},
    }
    for dist in ("overt", "cryptography", "rbcl", "doubleratchet", "x3dh", "xeddsa"):
        try:
            env["packages"][dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env["packages"][dist] = None
    env["git_commit"] = _git_commit()
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=BENCH_DIR.parent,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    suffix = "-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
    return done.stdout.strip() + suffix


def record_environment(path: Path, group: str, params: dict[str, Any], seconds: float) -> None:
    """Keep, per group, the environment and parameters of its last run in ``path``."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                data = loaded
        except json.JSONDecodeError:
            data = {}
    groups = data.get("groups")
    if not isinstance(groups, dict):
        groups = {}
    groups[group] = {
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(seconds, 1),
        "parameters": params,
        "environment": environment(),
    }
    data = {"groups": dict(sorted(groups.items()))}
    _write_atomically(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# ----------------------------------------------------------------------------- table


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[Row]) -> str:
    """A readable table: one line per (group, case, metric), Overt next to each peer.

    ``overt/peer`` is the literal quotient of the two values in that line's unit: for
    throughputs above 1 means Overt is faster, for times above 1 means Overt is slower.
    ``speedup_vs_*`` rows are left out because that column already shows them.
    """
    lines_by_key: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for row in sort_rows(rows):
        if row.metric.startswith(SPEEDUP_PREFIX):
            continue
        lines_by_key.setdefault((row.group, row.case, row.metric, row.unit), {})[row.impl] = (
            row.value
        )
    header = ("group", "case", "metric", "unit", "overt", "peer", "value", "overt/peer")
    table: list[tuple[str, ...]] = [header]
    for (group, case, metric, unit), values in lines_by_key.items():
        overt = values.get(OVERT)
        peers = sorted(impl for impl in values if impl != OVERT)
        overt_text = "" if overt is None else _fmt(overt)
        if not peers:
            table.append((group, case, metric, unit, overt_text, "", "", ""))
        for peer in peers:
            peer_value = values[peer]
            ratio = ""
            if overt is not None and peer_value != 0:
                ratio = f"{overt / peer_value:.2f}"
            table.append(
                (group, case, metric, unit, overt_text, peer, _fmt(peer_value), ratio),
            )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {4, 6, 7}
    out = []
    for n, line in enumerate(table):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise BenchError("no samples")
    return statistics.median(samples)
