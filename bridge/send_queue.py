"""The server's queue of serialized trains and its slow-client policy.

Policies, named after the control system's pipelines:

- ``wait``: the producer blocks while the queue is full (back-pressure).
- ``drop``: a train nobody is ready for is dropped at once (latest data).
- ``queue``: up to ``max_queue`` trains / ``max_queue_bytes`` wait; when full the *oldest* is
  dropped.

The queue is not thread-safe: :class:`bridge.Server` calls it with its lock held.
"""
from __future__ import annotations

from collections import deque

__all__ = ['POLICIES', 'QueuedTrain', 'SendQueue']

POLICIES = ('wait', 'drop', 'queue')


class QueuedTrain:
    """One serialized train: its frames, their size and its train ID (None if unknown)."""
    __slots__ = ('frames', 'nbytes', 'train_id')

    def __init__(self, frames: list, nbytes: int, train_id: int | None = None):
        self.frames = frames
        self.nbytes = nbytes
        self.train_id = train_id


class SendQueue:
    """Trains waiting for a client, bounded by count and bytes, with drops counted.

    Parameters
    ----------
    policy : {'wait', 'drop', 'queue'}
    max_queue : int
        Trains held at most (a ``wait`` producer blocks beyond this).
    max_queue_bytes : int
        The same limit in bytes; a single bigger train is still accepted.
    """

    def __init__(self, policy: str, max_queue: int, max_queue_bytes: int):
        if policy not in POLICIES:
            raise ValueError(f'Unknown policy {policy!r}; use one of {POLICIES}')
        if max_queue < 1 or max_queue_bytes < 1:
            raise ValueError('max_queue and max_queue_bytes must be at least 1')
        self.policy = policy
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.items: deque[QueuedTrain] = deque()
        self.nbytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def has_room(self, train: QueuedTrain) -> bool:
        """Whether ``train`` fits (an empty queue takes any train)."""
        return not self.items or (len(self.items) < self.max_queue
                                  and self.nbytes + train.nbytes <= self.max_queue_bytes)

    def make_room(self, train: QueuedTrain) -> None:
        """Drop what the policy drops before ``train`` is queued (``wait``: nothing)."""
        if self.policy == 'drop':
            self.drop_all()  # nobody took the previous train yet: it is stale now
        elif self.policy == 'queue':
            while self.items and not self.has_room(train):
                self.nbytes -= self.items.popleft().nbytes
                self.dropped += 1

    def drop_all(self) -> None:
        """Drop every queued train (counted)."""
        self.dropped += len(self.items)
        self.items.clear()
        self.nbytes = 0

    def append(self, train: QueuedTrain) -> None:
        self.items.append(train)
        self.nbytes += train.nbytes

    def popleft(self) -> QueuedTrain:
        train = self.items.popleft()
        self.nbytes -= train.nbytes
        return train

    def put_back(self, train: QueuedTrain) -> None:
        """Return a train that could not be sent to the head of the queue."""
        self.items.appendleft(train)
        self.nbytes += train.nbytes
