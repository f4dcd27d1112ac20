"""The ``fearless`` command line (also ``python -m fearless``).

Its help is argparse's, built from the subcommands' real options: ``fearless --help`` lists the
subcommands and each one's usage line, ``fearless demo --help`` the demo's options.
"""

from __future__ import annotations

import argparse
import sys


def build_parser(prog: str = "fearless") -> argparse.ArgumentParser:
    import fearless

    from ._cli import demo

    parser = argparse.ArgumentParser(
        prog=prog,
        description="fearless: channels, actors, atomic cells and a thread bridge on anyio.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fearless {fearless.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo_parser = commands.add_parser(
        "demo", help="run the demo (a pipeline, a bank of actors, a supervision tree)",
        description=demo.DESCRIPTION,
    )  # fmt: skip
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(run=demo.run_from_args, parser=demo_parser)
    # Every subcommand's usage line, generated from its parser: the help cannot go stale.
    usages = "".join(sub.format_usage() for sub in commands.choices.values())
    parser.epilog = f"{usages}\nRun '{prog} COMMAND --help' for a command's options."
    return parser


def main(argv: list[str] | None = None, prog: str = "fearless") -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; return the exit status
    (2 for a usage error, after argparse has printed the usage and the error to stderr)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        status: int = args.run(args.parser, args)
    except SystemExit as exit:
        if isinstance(exit.code, int):  # argparse's --help, --version and usage errors
            return exit.code
        raise  # a message (say, uvloop is not installed): Python prints it and exits with 1
    return status


if __name__ == "__main__":
    sys.exit(main(prog="python -m fearless"))
