"""Per-token rate limit (a token bucket of requests) and query budget (records answered), thread-safe."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenLimits:
    """Admission of requests per token id.

    rate: requests per second (None: unlimited), with bursts of up to max(1, rate) requests;
    budget: records answered per token over the server's life (None: unlimited).
    """

    def __init__(self, rate: float | None = None, budget: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.budget, self.clock = rate, budget, clock
        self.capacity = max(1.0, rate or 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}  # token id -> (tokens left, at time)
        self._answered: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit_request(self, token_id: str) -> int | None:
        """Take one request from the token's bucket: None when admitted, else whole seconds to wait
        (the Retry-After value, at least 1)."""
        if self.rate is None:
            return None
        with self._lock:
            now = self.clock()
            left, at = self._buckets.get(token_id, (self.capacity, now))
            left = min(self.capacity, left + (now - at) * self.rate)
            if left >= 1.0:
                self._buckets[token_id] = (left - 1.0, now)
                return None
            self._buckets[token_id] = (left, now)
            return max(1, math.ceil((1.0 - left) / self.rate))

    def admit_records(self, token_id: str, n: int) -> bool:
        """Charge n records to the token's budget: True when they fit (and are charged), else False."""
        with self._lock:
            answered = self._answered.get(token_id, 0)
            if self.budget is not None and answered + n > self.budget:
                return False
            self._answered[token_id] = answered + n
            return True

    def refund_records(self, token_id: str, n: int) -> None:
        """Give back n records charged to a request that was not answered (the model failed)."""
        with self._lock:
            self._answered[token_id] = max(0, self._answered.get(token_id, 0) - n)

    def answered(self, token_id: str) -> int:
        with self._lock:
            return self._answered.get(token_id, 0)

    def remaining(self, token_id: str) -> int | None:
        """Records the token may still have answered (None: no budget)."""
        return None if self.budget is None else self.budget - self.answered(token_id)
