"""The service manager's notification protocol (systemd's ``sd_notify``), for ``shutdownbus run``.

Rules of this module:

* One datagram per notification, ``KEY=VALUE`` lines, to the ``AF_UNIX``
  socket named by ``NOTIFY_SOCKET`` (a leading ``@`` names an abstract
  socket), as sd_notify(3) specifies; the standard library does it, no
  libsystemd.
* Nothing here fails the program: without ``NOTIFY_SOCKET``, or when the
  socket cannot be reached, a notification is dropped (the second failure
  and later ones silently).
* The variable is taken out of the environment when `Notifier.from_environment`
  reads it, so the command under ``run`` does not inherit it: with systemd's
  default ``NotifyAccess=main`` only ``run`` (the main pid) may notify, and
  ``run`` speaks for its command.
"""

from __future__ import annotations

import os
import socket

from . import _log

ENV_NOTIFY_SOCKET = "NOTIFY_SOCKET"


class Notifier:
    """Sends notifications to the service manager.

    Args:
        address: The socket's path, or ``@name`` for an abstract socket.
    """

    def __init__(self, address: str) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._warned = False

    @classmethod
    def from_environment(cls) -> Notifier | None:
        """The notifier ``NOTIFY_SOCKET`` asks for (and the variable removed), or None."""
        address = os.environ.pop(ENV_NOTIFY_SOCKET, "")
        return cls(address) if address.startswith(("/", "@")) else None

    def notify(self, **fields: str | int) -> bool:
        """Send ``fields`` in one datagram: ``notify(READY=1, STATUS="serving")``.

        Returns:
            True if the datagram was sent.
        """
        message = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                _log.warning("shutdownbus: could not notify the service manager at %s (%s)", self.address, exc)
            return False
        return True
