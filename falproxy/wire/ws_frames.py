"""RFC 6455 frames, headers only: what a relay needs to pass payload bytes through.

Sans-I/O. :class:`FrameReader` splits one direction's byte stream into frames: it checks
every header (section 5.2), keeps the fragmentation rules of section 5.4 and a message
size cap across fragments, hands a data frame's payload on in the pieces it arrived in
(still masked: the relay re-masks in one pass) and a control frame whole (unmasked).
The encoders build the few frames a relay writes itself: close, ping and pong, and the
header of a re-masked data frame.

What is checked, each a protocol error (1002) unless said otherwise:

- an RSV bit set: no extension is ever negotiated (permessage-deflate included), so
  section 5.2 requires failing the connection;
- an opcode section 5.2 reserves (3-7, 0xB-0xF);
- a frame masked when it must not be, or unmasked when it must be (section 5.1);
- a control frame that is fragmented or longer than 125 bytes (section 5.5);
- a 64-bit length with its most significant bit set (section 5.2);
- a continuation with no message open, or a new message before the last one ended (5.4);
- a message past ``max_message`` bytes, across its fragments: 1009 (section 7.4.1).

What is not: UTF-8 in text frames. A relay passes text through unread; each endpoint
validates what it receives (section 8.1 is an endpoint's duty). Close frame payloads are
read (:func:`parse_close`) because the relay acts on them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, NamedTuple

__all__ = [
    "CLOSE",
    "CONTINUATION",
    "CONTROL_MAX",
    "PING",
    "PONG",
    "FrameError",
    "FrameHeader",
    "FrameReader",
    "MaskKeys",
    "apply_mask",
    "close_frame",
    "control_frame",
    "data_header",
    "parse_close",
    "parse_header",
]

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
DATA_OPCODES: Final = frozenset({CONTINUATION, TEXT, BINARY})
CONTROL_OPCODES: Final = frozenset({CLOSE, PING, PONG})
CONTROL_MAX: Final = 125  # RFC 6455 5.5: a control frame's payload is at most 125 bytes
PROTOCOL_ERROR: Final = 1002  # RFC 6455 7.4.1
MESSAGE_TOO_BIG: Final = 1009  # RFC 6455 7.4.1
_FIN: Final = 0x80
_RSV: Final = 0x70
_MASKED: Final = 0x80
# RFC 6455 7.4.1-7.4.2: codes a peer may send in a close frame (the others are refused).
_SENDABLE_CLOSE: Final = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})


class FrameError(Exception):
    """A frame broke a rule: close the connection with ``code`` (1002 or 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameHeader(NamedTuple):
    """One parsed frame header; ``raw`` is its bytes as received, ``size`` their count."""

    fin: bool
    opcode: int
    length: int
    mask: bytes | None
    raw: bytes


def parse_header(data: bytes, pos: int) -> FrameHeader | None:
    """The frame header starting at ``data[pos]``, or None if it has not fully arrived.

    Raises :class:`FrameError` for RSV bits, a reserved opcode, a bad control frame or a
    64-bit length with its top bit set. Masking is the caller's rule (it knows the side).
    """
    available = len(data) - pos
    if available < 2:
        return None
    first, second = data[pos], data[pos + 1]
    if first & _RSV:
        raise FrameError(PROTOCOL_ERROR, "RSV bits set: no extension was negotiated")
    opcode = first & 0x0F
    length = second & 0x7F
    size = 2
    if length == 126:
        size = 4
        if available < size:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
    elif length == 127:
        size = 10
        if available < size:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        if length >> 63:
            raise FrameError(PROTOCOL_ERROR, "frame length out of range")
    mask = None
    if second & _MASKED:
        if available < size + 4:
            return None
        mask = data[pos + size : pos + size + 4]
        size += 4
    fin = bool(first & _FIN)
    if opcode not in DATA_OPCODES:
        if opcode not in CONTROL_OPCODES:
            raise FrameError(PROTOCOL_ERROR, "reserved opcode")
        if not fin or length > CONTROL_MAX:
            raise FrameError(PROTOCOL_ERROR, "control frame fragmented or over 125 bytes")
    return FrameHeader(fin, opcode, length, mask, data[pos : pos + size])


def data_header(first: int, length: int, mask: bytes | None) -> bytes:
    """A frame header: ``first`` is the FIN/opcode byte, ``mask`` the new masking key."""
    flag = _MASKED if mask is not None else 0
    if length < 126:
        head = bytes((first, flag | length))
    elif length < 1 << 16:
        head = bytes((first, flag | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, flag | 127)) + length.to_bytes(8, "big")
    return head + mask if mask is not None else head


def control_frame(opcode: int, payload: bytes, mask: bytes | None) -> bytes:
    """A whole control frame (close, ping, pong), masked with ``mask`` when given."""
    if len(payload) > CONTROL_MAX:
        raise ValueError("a control frame carries at most 125 bytes")
    body = payload if mask is None else apply_mask(payload, mask)
    return data_header(_FIN | opcode, len(payload), mask) + body


def close_frame(code: int | None, reason: str, mask: bytes | None) -> bytes:
    """A close frame; ``code`` None sends none (RFC 6455 5.5.1: the body is optional)."""
    payload = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
    return control_frame(CLOSE, payload[:CONTROL_MAX], mask)


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """The code (None when absent) and reason of a close frame's (unmasked) payload."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "close frame with a one-byte body")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CLOSE:
        raise FrameError(PROTOCOL_ERROR, "close code that may not be sent")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(1007, "close reason is not UTF-8") from None


def _apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """Pure-Python fallback for the ``websockets`` C helper (same result)."""
    size = len(data)
    key = int.from_bytes((bytes(mask) * (size // 4 + 1))[:size], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")


try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    apply_mask = _apply_mask_python


class MaskKeys:
    """Fresh masking keys (RFC 6455 section 5.3: unpredictable, from a strong source).

    Drawn from ``os.urandom`` a few KiB at a time rather than one system call per frame;
    each key is used once.
    """

    __slots__ = ("_at", "_pool", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool, at = os.urandom(self._size), 0
        self._at = at + 4
        return self._pool[at : at + 4]


OnData = Callable[[FrameHeader], None]
OnPayload = Callable[[bytes, int], None]
OnControl = Callable[[int, bytes], None]


class FrameReader:
    """One direction's frames: headers checked, payloads handed on, control frames whole.

    ``masked``: frames must be masked (a client's) or must not be (a server's).
    ``on_data(header)`` is called at each data frame's header, ``on_payload(piece,
    offset)`` with each piece of its payload as received (still masked; ``offset`` is the
    piece's position in the frame, for the mask), ``on_control(opcode, payload)`` with a
    whole control frame, unmasked. A callback may call :meth:`stop` to drop the rest.
    """

    __slots__ = (
        "_backlog",
        "_control",
        "_current",
        "_head",
        "_in_message",
        "_masked",
        "_max_message",
        "_message_bytes",
        "_offset",
        "_on_control",
        "_on_data",
        "_on_payload",
        "_paused",
        "_remaining",
        "_stopped",
    )

    def __init__(
        self,
        *,
        masked: bool,
        max_message: int,
        on_data: OnData,
        on_payload: OnPayload,
        on_control: OnControl,
    ) -> None:
        self._masked = masked
        self._max_message = max_message
        self._on_data = on_data
        self._on_payload = on_payload
        self._on_control = on_control
        self._head = b""  # a header split across reads
        self._current: FrameHeader | None = None  # the frame whose payload is arriving
        self._remaining = 0
        self._offset = 0
        self._control = b""  # a control frame's payload so far
        self._in_message = False
        self._message_bytes = 0
        self._stopped = False
        self._paused = False
        self._backlog = b""  # what arrived while paused

    def stop(self) -> None:
        """Ignore everything from here on (the connection is closing)."""
        self._stopped = True

    def pause(self) -> None:
        """Hold the rest (called from ``on_data`` while its frame waits for a verdict)."""
        self._paused = True

    def resume(self) -> None:
        """Go on with what was held."""
        self._paused = False
        backlog, self._backlog = self._backlog, b""
        if backlog:
            self.feed(backlog)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises :class:`FrameError` at the first broken rule."""
        if self._paused:
            self._backlog += data
            return
        if self._head:
            data, self._head = self._head + data, b""
        pos, end = 0, len(data)
        while pos < end and not self._stopped:
            if self._paused:
                self._backlog = data[pos:]
                return
            if self._remaining:
                pos = self._payload(data, pos, end)
                continue
            header = parse_header(data, pos)
            if header is None:
                self._head = data[pos:]
                return
            pos += len(header.raw)
            self._start(header)
            if not self._remaining:
                self._finish()

    def _start(self, header: FrameHeader) -> None:
        if (header.mask is not None) != self._masked:
            raise FrameError(PROTOCOL_ERROR, "frame masking is wrong for its side")
        self._current = header
        self._remaining = header.length
        self._offset = 0
        opcode = header.opcode
        if opcode in CONTROL_OPCODES:
            return
        if (opcode == CONTINUATION) != self._in_message:
            raise FrameError(PROTOCOL_ERROR, "fragments out of order")
        size = header.length + (self._message_bytes if opcode == CONTINUATION else 0)
        if size > self._max_message:
            raise FrameError(MESSAGE_TOO_BIG, "message too big")
        self._message_bytes = size
        self._in_message = not header.fin
        self._on_data(header)

    def _payload(self, data: bytes, pos: int, end: int) -> int:
        take = min(self._remaining, end - pos)
        piece = data[pos : pos + take] if take != end or pos else data
        self._remaining -= take
        header = self._current
        assert header is not None
        if header.opcode in CONTROL_OPCODES:
            self._control += piece
        else:
            self._on_payload(piece, self._offset)
            self._offset += take
        if not self._remaining:
            self._finish()
        return pos + take

    def _finish(self) -> None:
        header = self._current
        assert header is not None
        self._current = None
        if header.opcode in CONTROL_OPCODES:
            payload, self._control = self._control, b""
            if header.mask is not None:
                payload = apply_mask(payload, header.mask)
            self._on_control(header.opcode, payload)
