"""What a process holds, read from /proc (Linux): resident memory and open descriptors.

Used by the leak and memory-growth tests and by the benchmark scripts (bench/), on the
test process itself (``"self"``) or on a server they started (its pid).
"""

from __future__ import annotations

import os
from pathlib import Path


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def open_fds(pid: int | str = "self") -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))
