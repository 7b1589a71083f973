"""``shutdownbus run --name tight -- true`` whose exit hook finds no file descriptor left.

    no_descriptor_run.py

Exits with run's status.
"""

from __future__ import annotations

import atexit
import os
import resource
import sys

from shutdownbus._cli import main

resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
hog: list[int] = []


def exhaust() -> None:
    try:
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass


status = main(["run", "--name", "tight", "--", "true"])
atexit.register(exhaust)  # registered last, so it runs first: run's exit hook finds no descriptor
sys.exit(status)
