"""The frame-header codec of the frame relay (falproxy/wire/ws_frames.py), RFC 6455 section 5.

Frames are built by the ``websockets`` library's own encoder (an independent codec), fed
to :class:`FrameReader` whole and split byte by byte, and what comes out is compared.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from falproxy.wire.ws_frames import (
    CLOSE,
    PING,
    FrameError,
    FrameReader,
    MaskKeys,
    _apply_mask_python,
    apply_mask,
    close_frame,
    control_frame,
    data_header,
    parse_close,
    parse_header,
)


def encoded(
    opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = True, **kw: Any
) -> bytes:
    return Frame(opcode, data, fin, **kw).serialize(mask=mask, extensions=[])


class Collected:
    """What a reader handed on: data headers, unmasked payloads per frame, control frames."""

    def __init__(self, masked: bool = True, max_message: int = 1 << 20) -> None:
        self.headers: list[tuple[bool, int, int]] = []
        self.payloads: list[bytearray] = []
        self.masks: list[bytes | None] = []
        self.controls: list[tuple[int, bytes]] = []
        self.reader = FrameReader(
            masked=masked,
            max_message=max_message,
            on_data=self.on_data,
            on_payload=self.on_payload,
            on_control=self.on_control,
        )

    def on_data(self, header: Any) -> None:
        self.headers.append((header.fin, header.opcode, header.length))
        self.payloads.append(bytearray())
        self.masks.append(header.mask)

    def on_payload(self, piece: bytes, offset: int) -> None:
        assert offset == len(self.payloads[-1])
        mask = self.masks[-1]
        if mask is not None:
            turn = offset % 4
            piece = apply_mask(piece, mask[turn:] + mask[:turn])
        self.payloads[-1] += piece

    def on_control(self, opcode: int, payload: bytes) -> None:
        self.controls.append((opcode, payload))

    def feed(self, data: bytes, *, bytewise: bool = False) -> None:
        if bytewise:
            for i in range(len(data)):
                self.reader.feed(data[i : i + 1])
        else:
            self.reader.feed(data)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte by byte"])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_lengths_7_16_and_64_bit_and_masks(size: int, bytewise: bool) -> None:
    payload = os.urandom(size)
    got = Collected()
    got.feed(encoded(Opcode.BINARY, payload), bytewise=bytewise and size < 2000)
    assert got.headers == [(True, 2, size)]
    assert bytes(got.payloads[0]) == payload


def test_a_server_frame_is_unmasked_and_a_masked_one_refused() -> None:
    got = Collected(masked=False)
    got.feed(encoded(Opcode.TEXT, b"hi", mask=False))
    assert got.payloads == [bytearray(b"hi")] and got.masks == [None]
    with pytest.raises(FrameError) as caught:
        Collected(masked=False).feed(encoded(Opcode.TEXT, b"hi"))
    assert caught.value.code == 1002


def test_an_unmasked_client_frame_is_refused() -> None:
    with pytest.raises(FrameError) as caught:
        Collected(masked=True).feed(encoded(Opcode.BINARY, b"x", mask=False))
    assert caught.value.code == 1002


def test_fragments_with_control_frames_between_them() -> None:
    stream = (
        encoded(Opcode.TEXT, b"hel", fin=False)
        + encoded(Opcode.PING, b"p1")
        + encoded(Opcode.CONT, b"lo ", fin=False)
        + encoded(Opcode.PONG, b"")
        + encoded(Opcode.CONT, b"world")
    )
    for bytewise in (False, True):
        got = Collected()
        got.feed(stream, bytewise=bytewise)
        assert got.headers == [(False, 1, 3), (False, 0, 3), (True, 0, 5)]
        assert b"".join(got.payloads) == b"hello world"
        assert got.controls == [(0x9, b"p1"), (0xA, b"")]


@pytest.mark.parametrize(
    "stream",
    [
        encoded(Opcode.CONT, b"x"),  # continuation with no message open
        encoded(Opcode.TEXT, b"a", fin=False) + encoded(Opcode.BINARY, b"b"),  # new message
    ],
    ids=["orphan continuation", "message inside a message"],
)
def test_fragments_out_of_order_are_refused(stream: bytes) -> None:
    with pytest.raises(FrameError) as caught:
        Collected().feed(stream)
    assert caught.value.code == 1002


def test_the_size_cap_counts_across_fragments() -> None:
    got = Collected(max_message=10)
    got.feed(encoded(Opcode.BINARY, b"x" * 6, fin=False))
    with pytest.raises(FrameError) as caught:
        got.feed(encoded(Opcode.CONT, b"x" * 5))
    assert caught.value.code == 1009
    assert len(got.headers) == 1  # the frame over the cap was never handed on
    fits = Collected(max_message=10)
    fits.feed(encoded(Opcode.BINARY, b"x" * 6, fin=False) + encoded(Opcode.CONT, b"x" * 4))
    fits.feed(encoded(Opcode.BINARY, b"y" * 10))  # a new message starts from zero
    assert len(fits.headers) == 3


def test_a_header_announcing_too_much_is_refused_before_its_payload() -> None:
    header = bytes((0x82, 0x80 | 127)) + (1 << 40).to_bytes(8, "big") + b"mask"
    with pytest.raises(FrameError) as caught:
        Collected(max_message=1 << 20).feed(header)
    assert caught.value.code == 1009


@pytest.mark.parametrize(
    "header",
    [
        bytes((0x89, 0x80 | 126)) + (126).to_bytes(2, "big") + b"mask",  # ping over 125
        bytes((0x09, 0x80 | 1)) + b"mask",  # fragmented ping
        bytes((0x83, 0x80)) + b"mask",  # reserved data opcode
        bytes((0x8B, 0x80)) + b"mask",  # reserved control opcode
        bytes((0x82, 0x80 | 127)) + (1 << 63).to_bytes(8, "big") + b"mask",  # 64-bit top bit
    ],
    ids=["oversized control", "fragmented control", "opcode 3", "opcode 0xB", "length top bit"],
)
def test_protocol_errors(header: bytes) -> None:
    with pytest.raises(FrameError) as caught:
        Collected().feed(header)
    assert caught.value.code == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_any_rsv_bit_is_a_protocol_error(rsv: int) -> None:
    with pytest.raises(FrameError) as caught:
        parse_header(bytes((0x82 | rsv, 0x80)) + b"mask", 0)
    assert caught.value.code == 1002


def test_partial_headers_wait_for_more() -> None:
    frame = encoded(Opcode.BINARY, b"z" * 300)
    for cut in range(8):  # 2 + 2 (16-bit length) + 4 (mask)
        assert parse_header(frame[:cut], 0) is None
    assert parse_header(frame, 0) is not None


def test_encoders_round_trip_through_an_independent_parser() -> None:
    from websockets.frames import Close

    frame = close_frame(4001, "bye", None)
    assert Close.parse(frame[2:]) == Close(4001, "bye")
    masked = Collected(masked=True)
    masked.feed(control_frame(PING, b"abc", b"\x01\x02\x03\x04"))
    assert masked.controls == [(PING, b"abc")]
    assert data_header(0x82, 70000, None) == bytes((0x82, 127)) + (70000).to_bytes(8, "big")
    assert (
        data_header(0x81, 300, b"mask") == bytes((0x81, 0xFE)) + (300).to_bytes(2, "big") + b"mask"
    )
    assert close_frame(None, "", None) == bytes((0x80 | CLOSE, 0))


def test_close_payloads() -> None:
    assert parse_close(b"") == (None, "")
    assert parse_close((1000).to_bytes(2, "big") + "fin ✓".encode()) == (1000, "fin ✓")
    for bad, code in [(b"\x03", 1002), ((1005).to_bytes(2, "big"), 1002), (b"\x03\xe8\xff", 1007)]:
        with pytest.raises(FrameError) as caught:
            parse_close(bad)
        assert caught.value.code == code


def test_the_pure_python_mask_matches_the_c_one() -> None:
    data, mask = os.urandom(1001), os.urandom(4)
    assert _apply_mask_python(data, mask) == apply_mask(data, mask)
    assert _apply_mask_python(b"", mask) == b""


def test_pause_holds_the_rest_until_resumed() -> None:
    got = Collected()
    got.reader._on_data = lambda header: (Collected.on_data(got, header), got.reader.pause())  # type: ignore[method-assign]
    stream = encoded(Opcode.BINARY, b"first") + encoded(Opcode.BINARY, b"second")
    got.feed(stream)
    assert got.headers == [(True, 2, 5)] and got.payloads == [bytearray()]
    got.reader.resume()
    assert got.payloads[0] == b"first" and len(got.headers) == 2


def test_masking_keys_are_fresh_four_byte_keys() -> None:
    keys = MaskKeys(size=16)
    drawn = [keys.next() for _ in range(12)]  # three pools' worth
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > 9  # random: a repeat among 12 keys of 32 bits is unlikely
