"""Entry point of the `m2x` console script: `up`, `serve` and `accounts` sub-commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from m2x.runtime.logs import setup_logging
from m2x.runtime.settings import SettingsError, add_flags, load_settings
from m2x.supervisor.settings import UpSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2x", description="Self-hosted M2X API v2 platform.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run every component, supervised, until stopped")
    add_flags(up, UpSettings)
    up.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")

    from m2x.cli.serve import component_names

    serve = commands.add_parser("serve", help="run one component alone in this process")
    serve.add_argument("component", choices=component_names())
    serve.add_argument("args", nargs=argparse.REMAINDER, help="the component's own flags")

    accounts = commands.add_parser("accounts", help="manage accounts of a running stack")
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create an account; print its id and master key")
    create.add_argument("--name", required=True)
    create.add_argument("--data-dir", metavar="DIR", help="data directory of `m2x up`")
    create.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    return parser


def _settings(args: argparse.Namespace) -> UpSettings:
    return load_settings(UpSettings, "up", flags=args, config_file=args.config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from m2x.cli.serve import run_serve

        return run_serve(args.component, args.args)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"m2x {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        from m2x.cli.up import run_up

        setup_logging("up", settings.log_level)
        return run_up(settings, args.config)
    from m2x.cli.accounts import run_create

    return run_create(settings.data_dir, args.name)


if __name__ == "__main__":
    sys.exit(main())
