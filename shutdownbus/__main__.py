"""``python -m shutdownbus``: the same program as the ``shutdownbus`` command."""

from ._cli import main

raise SystemExit(main())
