"""``python -m shutdownbus.conformance.vectors [PATH]``: write the protocol's test vectors.

Without PATH, they go to standard output.  With ``--check PATH``, nothing is
written: the exit status says whether PATH holds what the code generates.
"""

from __future__ import annotations

import sys

from ._vectors import dumps, generate


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the vectors.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when written or up to date, 1 when out of date, 2 on bad usage.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    check = bool(args) and args[0] == "--check"
    if check:
        args = args[1:]
    if len(args) > 1 or (check and not args) or any(a.startswith("-") for a in args):
        print("usage: python -m shutdownbus.conformance.vectors [--check] [PATH]", file=sys.stderr)
        return 2
    text = dumps(generate())
    if not args:
        sys.stdout.write(text)
        return 0
    path = args[0]
    if check:
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except OSError as exc:
            print(f"vectors: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return 1
        if current != text:
            print(f"vectors: {path} is out of date; regenerate it with this command without --check", file=sys.stderr)
            return 1
        return 0
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as exc:
        print(f"vectors: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
