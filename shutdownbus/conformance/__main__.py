"""``python -m shutdownbus.conformance [--case NAME]... -- CMD ARGS``: run the conformance cases against a member."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the cases.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when every case passed, 1 when one failed, 2 on bad usage.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m shutdownbus.conformance [--case NAME]... -- CMD [ARGS...]"
    options, command = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else ([], args)
    only: list[str] = []
    from .._errors import ShutdownBusError
    from ._runner import CASES, run

    while options:
        option = options.pop(0)
        if option in ("-h", "--help"):
            print(usage)
            print("cases: " + " ".join(name for name, _ in CASES))
            return 0
        if option == "--case" and options:
            only.append(options.pop(0))
            continue
        print(f"conformance: unknown option {option!r}; {usage}", file=sys.stderr)
        return 2
    if not command or command[0].startswith("-"):
        print(f"conformance: no member command; {usage}", file=sys.stderr)
        return 2
    unknown = sorted(set(only) - {name for name, _ in CASES})
    if unknown:
        print(f"conformance: no case named {', '.join(unknown)}; see --help", file=sys.stderr)
        return 2
    try:
        ok = run(command, only=only or None, out=lambda line: print(line, flush=True))
    except OSError as exc:
        print(f"conformance: cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ShutdownBusError as exc:  # no channel can be made here (a bad setting, no CURVE): one line
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
