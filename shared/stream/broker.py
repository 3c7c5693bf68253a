"""Broker reachability: whether any bootstrap server accepts a TCP connection."""

from __future__ import annotations

import socket


def broker_reachable(bootstrap: str, timeout_s: float = 0.3) -> bool:
    """True when any bootstrap server accepts a TCP connection.

    kafka-python 3.0's ``bootstrap_connected()`` turns False once bootstrapping has finished,
    so it cannot tell a live broker from a dead one; a connect is cheap and unambiguous.
    """
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False
