import socket

import pytest

from tests.conftest import NetworkAccessError


def test_outside_connection_rejected():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkAccessError):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1, never routed


def test_outside_name_lookup_rejected():
    with pytest.raises(NetworkAccessError, match="huggingface.co"):
        socket.getaddrinfo("huggingface.co", 443)


def test_loopback_connection_allowed():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
