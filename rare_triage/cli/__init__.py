"""The one command line of rare-triage: `python -m rare_triage <command>` (or `rare-triage <command>`).

    demo      the main job end to end on the embedded defaults (reference, daily partitions, train, publish)
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
from collections.abc import Mapping, Sequence

DEFAULT_DAYS = 35


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
        from rare_triage.cli.demo import run_demo  # noqa: PLC0415 - lazy: --help must not load Dagster

        run_demo(args.days, args.end, args.train)
        return 0
    from rare_triage.cli import models  # noqa: PLC0415 - lazy: --help must not load Dagster

    try:
        if args.command == "status":
            print(models.status(env))
            return 0
        if args.command == "promote":
            return models.promote(args.tolerance, env)
        return models.rollback(args.env, args.version, env)
    except models.CommandError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
