"""media.framebytes: the fast read of a frame buffer gives the bytes the slow copy gives."""

from __future__ import annotations

import random

import pjsua2 as pj

from media import framebytes, phone, probe


def _vector(data: bytes) -> pj.ByteVector:
    vec = pj.ByteVector()
    for b in data:
        vec.append(b)
    return vec


def test_the_direct_read_is_picked_on_this_build() -> None:
    assert framebytes.vector_bytes is framebytes.vector_bytes_direct


def test_direct_read_gives_the_same_bytes_as_the_copy() -> None:
    rng = random.Random(20)
    for size in (0, 1, 2, 159, 320, 640, 1920):
        data = bytes(rng.randrange(256) for _ in range(size))
        vec = _vector(data)
        assert framebytes.vector_bytes_copy(vec) == data
        assert framebytes.vector_bytes(vec) == data


def test_a_media_frames_buffer_reads_the_same_as_bytes_of_it() -> None:
    """What _TapPort and the ear read: MediaFrame.buf, as PJMEDIA fills it."""
    frame = pj.MediaFrame()
    data = bytes((i * 37 + 11) % 256 for i in range(320))
    frame.buf = _vector(data)
    frame.size = len(data)
    assert framebytes.vector_bytes(frame.buf) == bytes(frame.buf) == data


def test_tap_port_and_ear_share_the_one_helper() -> None:
    assert vars(phone)["vector_bytes"] is framebytes.vector_bytes
    assert vars(probe)["vector_bytes"] is framebytes.vector_bytes
