"""gunicorn on the bus: ``gunicorn -c gunicorn_conf.py app:app``.

gunicorn needs nothing to be stopped well: its SIGTERM is a graceful stop,
and shutdownbus sends it at once to a child that never joins.  With this
configuration the master joins, so a parent can wait for it to be ready
(``spawn(..., ready_timeout=...)``) and the report shows it as a member.

The master joins with ``interrupt_main=False``: a stop becomes gunicorn's
own SIGTERM, its graceful path (workers finish their requests, ``on_exit``
runs).  A plain ``join()`` would raise StopRequested in the arbiter's loop,
which exits at once and skips that path.
"""

import os
import signal

import shutdownbus

bind = "127.0.0.1:0"
workers = 2


def on_starting(server):  # in the master, before the workers are forked
    if shutdownbus.join(interrupt_main=False):
        shutdownbus.on_stop(lambda reason: os.kill(os.getpid(), signal.SIGTERM))


def when_ready(server):  # the master listens
    shutdownbus.ready()


def on_exit(server):
    server.log.info("gunicorn: on_exit ran")
