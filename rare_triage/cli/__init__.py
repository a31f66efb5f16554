"""The one command line of rare-triage: `python -m rare_triage <command>` (or `rare-triage <command>`).

    demo      the main job end to end on the embedded defaults (reference, daily partitions, train, publish)
    smoke     the whole graph on a small fixed synthetic slice in a throwaway home; exit 1 on a failed blocking check
    status    which version dev and prod serve, and every published version
    promote   run promote_to_prod: dev -> prod if the promotion gate passes
    rollback  run rollback: point an env back at an earlier published version

Every command runs against the Dagster instance of DAGSTER_HOME (default $RARE_TRIAGE_HOME/dagster_home), so each
run shows in the UI afterwards, with resources from the environment (RARE_TRIAGE_BUCKET_URI, ...). Parsing the
arguments imports nothing heavy: `--help` answers at once, and each command imports what it needs.
"""

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_DAYS = 35
# the smoke's slice (rare_triage/cli/smoke.py): fixed days, so every run materializes the same data
SMOKE_DAYS = 21
SMOKE_END = dt.date(2025, 3, 31)
SMOKE_ENCOUNTERS_PER_DAY = 400
SMOKE_POPULATION = 20_000


def build_parser() -> argparse.ArgumentParser:
    """Arguments of every command."""
    parser = argparse.ArgumentParser(
        prog="rare_triage", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main job end to end on the embedded defaults")
    demo.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"daily partitions (default {DEFAULT_DAYS})")
    demo.add_argument("--no-train", dest="train", action="store_false", help="stop after the features")
    demo.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=dt.date.today() - dt.timedelta(days=1),
        help="last partition, YYYY-MM-DD (default yesterday)",
    )
    smoke = commands.add_parser(
        "smoke",
        help="materialize the whole graph on a small synthetic slice in a throwaway home; exit 0 when every "
        "blocking check passed, 1 when one failed, 2 when a run failed otherwise",
    )
    smoke.add_argument("--days", type=int, default=SMOKE_DAYS, help=f"daily partitions (default {SMOKE_DAYS})")
    smoke.add_argument(
        "--end",
        type=dt.date.fromisoformat,
        default=SMOKE_END,
        help=f"last partition, YYYY-MM-DD (default {SMOKE_END}: the same slice every time)",
    )
    smoke.add_argument(
        "--encounters-per-day",
        type=int,
        default=SMOKE_ENCOUNTERS_PER_DAY,
        help=f"synthetic encounters a day (default {SMOKE_ENCOUNTERS_PER_DAY})",
    )
    smoke.add_argument(
        "--population", type=int, default=SMOKE_POPULATION, help=f"synthetic patients (default {SMOKE_POPULATION})"
    )
    smoke.add_argument(
        "--real-gates",
        action="store_true",
        help="run the training gates at their own thresholds (by default some run at the smoke's, see smoke.py)",
    )
    smoke.add_argument(
        "--summary", type=Path, help="write the markdown summary here (also appended to $GITHUB_STEP_SUMMARY)"
    )
    smoke.add_argument("--home", type=Path, help="state folder, new or empty, kept (default: a temporary folder)")
    smoke.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    commands.add_parser("status", help="what dev and prod serve, and the published versions")
    promote = commands.add_parser("promote", help="dev -> prod if the promotion gate passes")
    promote.add_argument(
        "--tolerance",
        type=float,
        help="how much worse (absolute) the challenger's gated metrics may be than the champion's "
        "(default: the promote job's, 0.01)",
    )
    back = commands.add_parser("rollback", help="point an env back at an earlier published version")
    back.add_argument("--env", default="prod", choices=["dev", "prod"])
    back.add_argument("--version", required=True, help="a published version, e.g. v3-0123456789ab")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; the exit code is 0 on success."""
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    if args.command == "demo":
        return _demo(args)
    if args.command == "smoke":
        return _smoke(args, env)
    # status needs no Dagster; promote and rollback run deployment jobs (rare_triage.cli.models)
    from rare_triage.cli.status import CommandError, status  # noqa: PLC0415 - lazy: --help imports nothing heavy

    try:
        if args.command == "status":
            print(status(env))
            return 0
        from rare_triage.cli import models  # noqa: PLC0415 - lazy: status must not load Dagster

        if args.command == "promote":
            return models.promote(args.tolerance, env)
        return models.rollback(args.env, args.version, env)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace) -> int:
    """The demo's exit code: 2 for an argument it refuses (before anything loads when it can tell), 1 when a run
    failed."""
    started = time.monotonic()
    from rare_triage.cli.demo_plan import DemoArgumentError, check_days  # noqa: PLC0415 - light: no Dagster

    try:
        check_days(args.days, args.train)
        print(f"demo: {args.days} days to {args.end}; loading Dagster and the code location", flush=True)
        from rare_triage.cli.demo import run_demo  # noqa: PLC0415 - lazy: --help must not load Dagster

        return run_demo(args.days, args.end, args.train, started=started)
    except DemoArgumentError as exc:
        print(exc, file=sys.stderr)
        return 2


def _smoke(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """The smoke's exit code; 2 on anything that stops it (an exit code 1 would read as a failed check)."""
    try:
        from rare_triage.cli import smoke  # noqa: PLC0415 - lazy: --help must not load Dagster

        options = smoke.SmokeOptions(
            days=args.days,
            end=args.end,
            encounters_per_day=args.encounters_per_day,
            population=args.population,
            real_gates=args.real_gates,
        )
        return smoke.run_smoke(options, env, home=args.home, keep=args.keep, summary=args.summary)
    except ValueError as exc:  # an argument the smoke refuses (--days, --end, --home)
        print(exc, file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 2


if __name__ == "__main__":
    sys.exit(main())
