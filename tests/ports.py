"""A free TCP port on 127.0.0.1 for a server a test starts (PostgreSQL, Mosquitto, a webhook receiver)."""

import socket


def free_port() -> int:
    """A port nothing listens on now: the OS picks it, the socket is closed before the server binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
