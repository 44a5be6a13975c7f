"""The live runner's reorder buffer: results reduced in the order their trains arrived.

Workers finish trains in any order; with ``LiveRunner(ordered=True)`` each result waits
here until those of the trains before it are in. The buffer is bounded: a train whose
result never comes (its worker died, or is slow) holds back at most ``limit`` others.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReorderBuffer"]


class ReorderBuffer:
    """Hands items on in sequence order, holding at most ``limit`` out-of-order ones.

    When full it moves past the missing sequence numbers; those arriving later are late
    (counted in ``late``, not handed on).

    Parameters
    ----------
    limit : int
        Out-of-order items held at most (at least 1).
    """

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.pending: dict[int, Any] = {}
        self.next = 0
        self.late = 0

    def push(self, seq: int, item: Any) -> list:
        """Add the item of sequence number ``seq``; return those now due, in order."""
        if seq < self.next:
            self.late += 1
            return []
        self.pending[seq] = item
        out = self._release()
        while len(self.pending) > self.limit:
            self.next = min(self.pending)
            out += self._release()
        return out

    def _release(self) -> list:
        out = []
        while self.next in self.pending:
            out.append(self.pending.pop(self.next))
            self.next += 1
        return out

    def flush(self) -> list:
        """Every item still held, in sequence order (at the end of a run)."""
        return [self.pending.pop(s) for s in sorted(self.pending)]
