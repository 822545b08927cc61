"""Exponential backoff between broker reconnection attempts (pure, so it is testable)."""

from __future__ import annotations


class Backoff:
    """initial, 2*initial, 4*initial, ... capped at maximum; reset after a success."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._next = initial
        self.failures = 0

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self._next = self.initial
        self.failures = 0
