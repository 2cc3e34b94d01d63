"""Test-session guards: offline Hugging Face libraries, mini profile, and no network.

Any attempt to open a socket to a non-loopback address fails the test that
made it, so a test can never reach the Hub or any other host by accident.
"""

import ipaddress
import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("COURSE_PROFILE", "mini")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class NetworkAccessError(RuntimeError):
    """Raised when code under test tries to reach a non-loopback address."""


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name that is not localhost would need DNS


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"Network access is disabled in tests (tried to connect to {address!r}).")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"Network access is disabled in tests (tried to connect to {address!r}).")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not _is_loopback((host, 0)):
        raise NetworkAccessError(f"Network access is disabled in tests (tried to resolve {host!r}).")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config):
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(scope="session")
def text_encoder():
    """The course's text encoder as ``(tokenizer, model)`` on the CPU, loaded once."""
    from course_utils.text import load_text_encoder

    return load_text_encoder(profile="mini", device="cpu")


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one torch CPU thread, the thread count of the model cards' figures.

    The same thread count gives the same floating-point sums, so metrics and greedy
    decoding repeat exactly. Module scope matters: pytest sets up wider-scoped fixtures
    first, so a module that requests this one (``pytestmark``) computes its module-scoped
    metric fixtures on one thread too. The previous count is restored afterwards.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
