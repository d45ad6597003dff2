"""An upstream response being read: its head, and its body chunk by chunk as received."""

from __future__ import annotations

from collections.abc import Callable

from falproxy.client.connection import UpstreamConnection
from falproxy.core.errors import UpstreamBroken


class UpstreamResponse:
    """The status and raw headers of a response, and a reader for its body.

    ``complete`` becomes true once the whole, well-framed body was read (a body framed by
    the connection's close is complete when the upstream closes it cleanly). Exactly one of
    :meth:`release` and :meth:`close` ends it; both are safe to call again.
    """

    __slots__ = (
        "_conn",
        "_idle_timeout",
        "_recycle",
        "complete",
        "headers",
        "status",
        "via_backup",
    )

    def __init__(
        self,
        conn: UpstreamConnection,
        idle_timeout: float,
        recycle: Callable[[UpstreamConnection], None],
    ) -> None:
        self._conn: UpstreamConnection | None = conn
        self._idle_timeout = idle_timeout
        self._recycle = recycle
        self.status = conn.status
        self.headers = conn.headers
        self.complete = False
        self.via_backup = False  # sent to the backup URL (the first host was unreachable)

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet read (bounded by the read high-water mark)."""
        return 0 if self._conn is None else self._conn.buffered

    async def read_chunk(self) -> bytes:
        """The next body bytes as received; ``b""`` at a clean end.

        Raises :class:`UpstreamBroken` when the body is cut or malformed, or when the
        upstream stays silent longer than the idle timeout.
        """
        conn = self._conn
        if conn is None:
            return b""
        while True:
            if conn.buffered:
                return conn.take_body()
            if conn.message_complete:
                self.complete = True
                return b""
            if conn.error is not None:
                raise UpstreamBroken(conn.error)
            if conn.lost:
                if conn.close_framed:  # the body was framed by the close: a clean end
                    self.complete = True
                    return b""
                raise UpstreamBroken("the upstream closed the connection mid-body")
            try:
                await conn.wait(self._idle_timeout)
            except TimeoutError:
                raise UpstreamBroken("the upstream went silent mid-body") from None

    def release(self) -> None:
        """Back to the pool if complete and keep-alive allows it; otherwise closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.complete and conn.reusable:
            self._recycle(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the connection whatever state the response is in."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
