"""``python -m bench [--only GROUP] [--messages N] [--repeats R] [--param k=v] ...``

Runs the registered groups (all of them, or the ``--only`` ones) in order, rewrites each
group's rows in the results file as soon as that group finishes, records the environment next
to it and prints a summary table. Exits non-zero if any group failed; the other groups' rows
are still written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from bench.core import (
    DEFAULT_RESULTS,
    BenchError,
    Context,
    Group,
    Row,
    check_rows,
    discover_groups,
    format_table,
    load_rows,
    record_environment,
    replace_group_rows,
)


def _parse_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def build_parser(groups: dict[str, Group]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Overt's benchmark groups and record rows in bench/results.json.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(groups),
        metavar="GROUP",
        help=f"run only this group (repeatable); one of: {', '.join(groups)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(os.environ.get("OVERT_BENCH_RESULTS", DEFAULT_RESULTS)),
        help="results file (default bench/results.json, or $OVERT_BENCH_RESULTS)",
    )
    parser.add_argument(
        "--environment",
        type=Path,
        default=None,
        help="environment file (default: environment.json next to the results file)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help="iteration count for every group (same as --param messages=N)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="repetitions per measurement (same as --param repeats=N)",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        type=_parse_param,
        default=[],
        metavar="NAME=VALUE",
        help="a group parameter (see --list); repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list groups and their parameters")
    parser.add_argument(
        "--show", action="store_true", help="print the table of the results file; run nothing"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def _list(groups: dict[str, Group]) -> None:
    for group in groups.values():
        print(f"{group.name}: {group.description}")
        for name, text in group.parameters.items():
            print(f"    {name}: {text}")


def main(argv: list[str] | None = None) -> int:
    groups = discover_groups()
    args = build_parser(groups).parse_args(argv)
    if args.list:
        _list(groups)
        return 0
    results: Path = args.results
    if args.show:
        print(format_table(load_rows(results)))
        return 0
    env_path: Path = args.environment or results.with_name("environment.json")

    params = dict(args.param)
    if args.messages is not None:
        params["messages"] = str(args.messages)
    if args.repeats is not None:
        params["repeats"] = str(args.repeats)

    names = list(dict.fromkeys(args.only or groups))  # --only given twice runs once
    selected = [groups[name] for name in names]
    ran: list[Row] = []
    failed: list[str] = []
    for group in selected:
        ctx = Context(group=group.name, params=params, verbose=not args.quiet)
        print(f"== {group.name}: {group.description}", flush=True)
        started = time.perf_counter()
        try:
            rows = group.run(ctx)
            check_rows(group.name, rows)
        except BenchError as exc:
            print(f"!! {group.name} failed: {exc}", file=sys.stderr)
            failed.append(group.name)
            continue
        except Exception:
            traceback.print_exc()
            print(f"!! {group.name} failed (traceback above)", file=sys.stderr)
            failed.append(group.name)
            continue
        seconds = time.perf_counter() - started
        replace_group_rows(results, group.name, rows)
        record_environment(env_path, group.name, dict(ctx.used), seconds)
        unused = sorted(set(params) - set(ctx.used))
        if unused:
            print(f"   note: {group.name} ignored parameter(s) {', '.join(unused)}")
        ran.extend(rows)
        print(f"== {group.name}: {len(rows)} rows in {seconds:.1f} s -> {results}", flush=True)

    if ran:
        print()
        print(format_table(ran))
    if failed:
        print(f"\nfailed groups: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
