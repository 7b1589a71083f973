"""The ``shutdownbus`` command line (only ``--version`` so far)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``shutdownbus`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="shutdownbus",
        description="Stop whole process trees cleanly, on every OS, without signals.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
