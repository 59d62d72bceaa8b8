"""Guards on a call's RTP: media only from the caller's negotiated address, and the end of
calls whose media has stopped.

RTP source lock
---------------
PJMEDIA 2.15 takes RTP from any source, and after ``PJMEDIA_RTP_NAT_PROBATION_CNT`` (10)
packets in a row from a new one (at once, if the caller has sent nothing yet) it switches
the stream's remote address to it: NAT latching. Anyone who finds a call's RTP port can then
take the call over (the caller's audio goes to them) or inject RFC 4733 key presses. The
switch is compiled in (``PJMEDIA_TRANSPORT_SWITCH_REMOTE_ADDR``); the transport option that
turns it off (``PJMEDIA_UDP_NO_SRC_ADDR_CHECKING``) is not reachable through pjsua2, and it
would not stop packets from other sources reaching the stream anyway.

So the worker ``connect()``\\ s the call's RTP and RTCP sockets to the addresses the caller's
SDP gave (RFC 3550 symmetric RTP, RFC 4961): the kernel then drops every datagram from any
other address before PJMEDIA sees it, and a re-INVITE that moves the media connects them
anew. PJMEDIA keeps sending with ``sendto`` to the same address, which a connected UDP socket
allows. The sockets are PJMEDIA's; they are found by their local port in ``/proc/self/fd``
and connected through a duplicate descriptor (the same open socket).

Media timeout
-------------
:class:`RxWatch` is the pure core of ``media.rtp_timeout_s``: fed the stream's received-packet
counter and whether the caller is meant to be sending (not on hold), with ``now``, it says
when no packet has come for the timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import dataclass

log = logging.getLogger("media.rtp_guard")

Address = tuple[str, int]


def parse_address(text: str) -> Address | None:
    """``"127.0.0.1:4000"`` or ``"[::1]:4000"`` as (host, port); None if empty, on hold
    (``0.0.0.0``, RFC 3264 section 8.4) or unparsable."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_unspecified or not 0 < int(port) < 65536:
        return None
    return str(ip), int(port)


def find_udp_socket(port: int) -> int | None:
    """The descriptor of this process's UDP socket bound to ``port`` (PJMEDIA reports the
    published address, which may be ``sip.public_address``: the port is what identifies the
    socket, since a process binds each port once)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in fds:
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(fd)) as s:
                if s.family not in (socket.AF_INET, socket.AF_INET6) or \
                        s.type != socket.SOCK_DGRAM:
                    continue  # netlink's getsockname is a tuple too
                bound = s.getsockname()
        except OSError:
            continue  # closed meanwhile, or not an inet socket
        if isinstance(bound, tuple) and bound[1] == port:
            return fd
    return None


def connect_socket(local_port: int, remote: Address) -> bool:
    """Connect the UDP socket bound to ``local_port`` to ``remote``: from then on the kernel
    delivers it datagrams from ``remote`` only. False if no such socket was found."""
    fd = find_udp_socket(local_port)
    if fd is None:
        return False
    with socket.socket(fileno=os.dup(fd)) as s:
        s.connect(remote)
    return True


def peer_of(local_port: int) -> Address | None:
    """The address the socket bound to ``local_port`` is connected to, if any."""
    fd = find_udp_socket(local_port)
    if fd is None:
        return None
    with socket.socket(fileno=os.dup(fd)) as s:
        try:
            peer = s.getpeername()
        except OSError:
            return None
    return str(peer[0]), int(peer[1])


@dataclass
class RxWatch:
    """No RTP from the caller for ``timeout_s`` (while the caller is meant to send)."""

    timeout_s: float
    last_count: int = -1
    last_rx_s: float | None = None

    def update(self, rx_packets: int, receiving: bool, now: float) -> bool:
        """Feed the counter at ``now``; True once the caller has been silent too long.
        ``receiving`` is False while the caller holds the call (sendonly/inactive): then the
        silence does not count."""
        if self.last_rx_s is None or rx_packets != self.last_count or not receiving:
            self.last_count = rx_packets
            self.last_rx_s = now
            return False
        return self.timeout_s > 0 and now - self.last_rx_s >= self.timeout_s

    def silent_s(self, now: float) -> float:
        return 0.0 if self.last_rx_s is None else now - self.last_rx_s
