"""The peak resident memory of this process since a point, on Linux (for tests that bound memory).

``/proc/self/clear_refs`` resets the kernel's peak (``VmHWM``) to the current resident set, so a test can
measure one operation's peak growth in a process that has already imported everything.
"""

from __future__ import annotations

from pathlib import Path

SUPPORTED = Path("/proc/self/clear_refs").exists()


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(f"{key}:"))


def reset_peak() -> int:
    """Reset the peak to the current resident set and return that, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def peak_growth(since: int) -> int:
    """Bytes the peak resident set has reached above ``since`` (a :func:`reset_peak` value)."""
    return _status_bytes("VmHWM") - since
