"""The pure parts of media/rtp_guard.py: SDP addresses and the media-timeout watch."""

from __future__ import annotations

import socket

import pytest

from media.rtp_guard import RxWatch, connect_socket, parse_address, peer_of


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:4000", ("127.0.0.1", 4000)),
    ("[::1]:4000", ("::1", 4000)),
    ("0.0.0.0:4000", None),  # a hold (RFC 3264 section 8.4): nothing to lock to
    ("", None),
    ("127.0.0.1:0", None),
    ("host.example:4000", None),
])
def test_sdp_addresses_are_parsed_or_refused(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(text) == expected


def test_a_socket_is_found_by_port_and_connected_so_only_its_peer_gets_through() -> None:
    with (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
          socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller,
          socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder):
        ours.bind(("127.0.0.1", 0))
        caller.bind(("127.0.0.1", 0))
        ours.settimeout(1.0)
        port = ours.getsockname()[1]
        assert connect_socket(port, caller.getsockname())
        assert peer_of(port) == caller.getsockname()
        intruder.sendto(b"intruder", ("127.0.0.1", port))
        caller.sendto(b"caller", ("127.0.0.1", port))
        assert ours.recv(100) == b"caller"  # the intruder's datagram was dropped
    assert not connect_socket(port, ("127.0.0.1", 9))  # closed: nothing to connect


def test_the_watch_fires_once_the_caller_has_been_silent_for_the_timeout() -> None:
    watch = RxWatch(timeout_s=10)
    assert not watch.update(0, True, now=100.0)  # media up, nothing yet
    assert not watch.update(50, True, now=105.0)
    assert not watch.update(50, True, now=114.0)
    assert watch.update(50, True, now=115.0)
    assert watch.silent_s(115.0) == 10.0


def test_a_hold_does_not_count_as_silence_and_zero_turns_the_watch_off() -> None:
    watch = RxWatch(timeout_s=10)
    watch.update(5, True, now=0.0)
    assert not watch.update(5, False, now=30.0)  # on hold: the caller sends nothing, rightly
    assert not watch.update(5, True, now=39.0)
    assert watch.update(5, True, now=40.0)
    off = RxWatch(timeout_s=0)
    off.update(1, True, now=0.0)
    assert not off.update(1, True, now=1e6)
