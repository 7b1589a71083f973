"""The environment variables shutdownbus reads.

Rules of this module:

* It imports nothing: the registry (so ``list``) and the process trees read
  these names without loading the transport.
* A spawn hands its child `PER_SPAWN_VARIABLES` (the last one only where it
  takes farewells); `join` removes them from
  ``os.environ``, so that the child's own children do not inherit them.  The
  user's settings stay, and are inherited.
* `ENV_BELOW` goes the other way: `join` sets it, so that what a member
  starts by other means than `spawn` inherits it, and a spawn removes it
  from its child's environment.
"""

# Variables a spawned child receives.  join() removes them from os.environ.
ENV_ENDPOINT = "SHUTDOWNBUS_ENDPOINT"
ENV_SECRET = "SHUTDOWNBUS_SECRET"  # noqa: S105 (a variable name, not a secret)
ENV_STOP_TIMEOUT = "SHUTDOWNBUS_STOP_TIMEOUT"
# Set to the endpoint by a parent that takes farewells (docs/protocol.md 2.1,
# 7.9): tied to the endpoint, so that a child of a spawner that does not set
# it (another language's, an older version's) does not trust an inherited one.
ENV_FAREWELLS = "SHUTDOWNBUS_FAREWELLS"
PER_SPAWN_VARIABLES = (ENV_ENDPOINT, ENV_SECRET, ENV_STOP_TIMEOUT, ENV_FAREWELLS)
# Set by join() to the endpoint it joined (not secret), and so inherited by
# everything the member starts without spawn(): a plain subprocess, a shell
# and its jobs.  Should the member be killed, they are re-parented to its
# parent, which tells them by it from processes that are none of its
# business (docs/protocol.md 2.6).  spawn() removes it: a spawned child
# carries its own endpoint.
ENV_BELOW = "SHUTDOWNBUS_BELOW"
# User settings: they stay in the environment and are inherited.
ENV_TRANSPORT = "SHUTDOWNBUS_TRANSPORT"
ENV_RUNTIME_DIR = "SHUTDOWNBUS_RUNTIME_DIR"
# "pyzmq": reach ZeroMQ through pyzmq rather than through our own binding to
# the libzmq it bundles (`_zmq`); for comparing the two, and a way out
# should ours misbehave somewhere.
ENV_ZMQ_BINDING = "SHUTDOWNBUS_ZMQ_BINDING"
