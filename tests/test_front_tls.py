"""SIP over TLS at the front: Kamailio terminates TLS (Debian's OpenSSL) and speaks UDP to
the workers. A certificate for 127.0.0.1 is made here with openssl; baresip (which has TLS;
Debian's sipp has not) calls over it, with that certificate as its trusted CA, through the
front to a sipp worker."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.kamailio import KamailioConfig, KamailioConfigError, render
from tests.test_interop_baresip import BARESIP, MODULE_DIR, _free_port, baresip_calling
from tests.test_kamailio import OK, Rig, rig_factory, with_peers  # noqa: F401

OPENSSL = shutil.which("openssl")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (CN and subjectAltName), valid two days."""
    assert OPENSSL is not None
    cert, key = tmp_path / "front-cert.pem", tmp_path / "front-key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_needs_a_certificate_and_a_key_that_exist(tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError) as err:
        KamailioConfig(tls_port=5061, tls_cert=tmp_path / "nope.pem")
    assert "tls_cert: " in str(err.value) and "is not a file" in str(err.value)
    assert "tls_key: needed with tls_port" in str(err.value)


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_tls_renders_a_tls_listener_besides_udp(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    text = render(KamailioConfig(run_dir=tmp_path, port=5070, transports=("udp",),
                                 tls_port=5071, tls_cert=cert, tls_key=key))["kamailio.cfg"]
    assert "listen=udp:127.0.0.1:5070\nlisten=tls:127.0.0.1:5071\nenable_tls=yes" in text
    assert f'modparam("tls", "certificate", "{cert.resolve()}")' in text
    assert "disable_tcp=yes" not in text  # TLS runs over TCP


@with_peers
@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
@pytest.mark.skipif(BARESIP is None or MODULE_DIR is None, reason="baresip not installed")
def test_a_call_over_tls_reaches_a_udp_worker_and_hangs_up_through_the_front(
        rig_factory: Callable[..., Rig], tmp_path: Path) -> None:  # noqa: F811
    cert, key = self_signed(tmp_path)
    tls_port = 5599  # below the blocks tests.test_kamailio hands out (5600 + 20 n)
    rig = rig_factory([OK], tls_port=tls_port, tls_cert=cert, tls_key=key)
    (worker,) = rig.workers
    sip_port = _free_port(18600)
    with baresip_calling(f"sip:ivr@127.0.0.1:{tls_port};transport=tls", tmp_path, sip_port,
                         (22600, 22639), extra_config=f"sip_cafile\t\t{cert}\n") as phone:
        up = phone.wait_for("Call established", timeout_s=15)
        phone.keys("/hangup\n")
        phone.wait_for("terminate call", timeout_s=10, since=up)
    invite = worker.received("INVITE ")[0]
    assert f"127.0.0.1:{tls_port};transport=tls" in invite  # the front's TLS side recorded
    vias = [ln for ln in invite.splitlines() if ln.startswith("Via:")]
    assert vias[0].startswith(f"Via: SIP/2.0/UDP 127.0.0.1:{rig.front.config.port}")  # to it
    assert vias[1].startswith("Via: SIP/2.0/TLS ")  # the caller came over TLS
    assert len(worker.received("BYE ")) == 1
    rig.wait_loads({worker.uri: 0})


@with_peers
@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_the_stack_serves_tls_from_the_sip_settings(tmp_path: Path) -> None:
    import socket
    import ssl

    from tests.conftest import start_stack

    cert, key = self_signed(tmp_path)
    stack = start_stack(tmp_path, workers=1, env={
        "IVR_SIP_TLS_PORT": "5598", "IVR_SIP_TLS_CERT": str(cert),
        "IVR_SIP_TLS_KEY": str(key)})
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", 5598), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(b"OPTIONS sip:ivr@127.0.0.1:5598 SIP/2.0\r\n"
                        b"Via: SIP/2.0/TLS 127.0.0.1:5597;branch=z9hG4bKtls1\r\n"
                        b"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\n"
                        b"Call-ID: tls1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                        b"Content-Length: 0\r\n\r\n")
            assert tls.recv(65535).startswith(b"SIP/2.0 200 ")
    finally:
        assert stack.stop() == 0
