"""Loopback addresses and ports for the test servers: the one address they use, free ports, probes.

Every test server listens on 127.0.0.1 only (sshd: on given 127.0.0.0/8 addresses).
"""

import ipaddress
import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    There is a small window in which another process could take it; a start that then fails
    says "Address already in use" in its ServiceError.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on the loopback port (of host, 127.0.0.1 by default)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def loopback_address(address: str) -> str:
    """address in canonical form; ValueError unless it is an IPv4 loopback address (127.0.0.0/8)."""
    ip = ipaddress.ip_address(address)
    if ip.version != 4 or not ip.is_loopback:
        raise ValueError(f"{address} is not an IPv4 loopback address (127.0.0.0/8)")
    return str(ip)
