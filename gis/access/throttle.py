"""Sign-in throttling: failed attempts per key (a username, a client address) buy a growing wait.

Pure and clock-injectable, so the HTTP layer and the tests drive it with any clock. A key may
fail `free_failures` times; from then on every further failure locks it for `base_delay_s`,
doubling with each failure, capped at `max_delay_s`. A key's count is forgotten `window_s`
after its last failure (15 minutes without a failure start it afresh), and a success resets it.

While a key is locked, attempts are refused without evaluating the password. Attempts running
at the same time are counted too: a key never has more attempts in flight than it has free
failures left (at least one), so a burst of parallel guesses cannot outrun the count.

State here lives in this process (it also counts attempts in flight, which only a process
sees); gis.access.shared_throttle keeps the failure counts in PostgreSQL as well, so several
workers and hosts share one budget. Memory stays
bounded: entries older than the window are dropped, and past `max_entries` the least recently
failed keys are dropped first (which an attacker with many addresses could use to flush counts;
the per-username count still holds for the account under attack).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass
class KeyThrottle:
    """Failure counts and lockouts of one kind of key (usernames, or client addresses)."""

    free_failures: int = 5
    window_s: float = 15 * 60
    base_delay_s: float = 30.0
    max_delay_s: float = 15 * 60
    max_entries: int = 10_000
    clock: Clock = time.monotonic
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict, repr=False)
    _in_flight: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.free_failures < 1 or self.window_s <= 0 or self.base_delay_s <= 0:
            raise ValueError("free_failures, window_s and base_delay_s must be positive")
        if self.max_delay_s < self.base_delay_s or self.max_entries < 1:
            raise ValueError("max_delay_s must be >= base_delay_s and max_entries >= 1")

    def _current(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_failure > self.window_s \
                and entry.locked_until <= now:
            del self._entries[key]
            return None
        return entry

    def wait(self, key: str) -> float:
        """Seconds until `key` may try again (0 when it may try now)."""
        now = self.clock()
        entry = self._current(key, now)
        if entry is not None and entry.locked_until > now:
            return entry.locked_until - now
        failures = entry.failures if entry else 0
        if self._in_flight.get(key, 0) >= max(self.free_failures - failures, 1):
            return 1.0  # others are trying this key right now; their outcome decides
        return 0.0

    def start(self, key: str) -> None:
        """Count an attempt on `key` as in flight until `failed` or `succeeded`."""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def abandoned(self, key: str) -> None:
        """End an attempt on `key` that had no verdict (an error): no longer in flight."""
        self._finish(key)

    def _finish(self, key: str) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def failed(self, key: str) -> float:
        """Record a failure of `key`; the lockout it now starts, in seconds (0 for none)."""
        self._finish(key)
        now = self.clock()
        entry = self._current(key, now) or _Entry()
        entry.failures += 1
        entry.last_failure = now
        delay = self.lockout_s(entry.failures)
        if delay:
            entry.locked_until = now + delay
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(now)
        return delay

    def adopt(self, key: str, *, failures: int, lockout_s: float) -> None:
        """Take `key`'s count from the shared store: its failures and the lockout they started."""
        now = self.clock()
        entry = self._current(key, now) or _Entry()
        entry.failures, entry.last_failure = failures, now
        entry.locked_until = now + lockout_s if lockout_s else 0.0
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(now)

    def lockout_s(self, failures: int) -> float:
        """The lockout that the `failures`-th failure in a row starts, in seconds (0 for none)."""
        if failures < self.free_failures:
            return 0.0
        # 2 ** n overflows float for huge n; the cap is reached long before 64 doublings.
        doublings = min(failures - self.free_failures, 64)
        return min(self.base_delay_s * 2.0**doublings, self.max_delay_s)

    def succeeded(self, key: str, *, reset: bool = True) -> None:
        """End an attempt on `key` that succeeded; `reset` forgets its failures."""
        self._finish(key)
        if reset:
            self._entries.pop(key, None)

    def failures(self, key: str) -> int:
        """Failures of `key` still counted."""
        entry = self._current(key, self.clock())
        return entry.failures if entry else 0

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        # Oldest failure first: stale entries sit at the front.
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            stale = now - entry.last_failure > self.window_s and entry.locked_until <= now
            if not stale and len(self._entries) <= self.max_entries:
                break
            del self._entries[key]


@dataclass(frozen=True)
class Verdict:
    """Whether a sign-in attempt may be evaluated, and if not, how long to wait."""

    allowed: bool
    retry_after_s: int = 0


@dataclass
class LoginThrottle:
    """Sign-in throttle over usernames and client addresses; thread-safe."""

    users: KeyThrottle = field(default_factory=KeyThrottle)
    addresses: KeyThrottle = field(default_factory=lambda: KeyThrottle(free_failures=20))
    # Also count failures in PostgreSQL for all processes (gis.access.shared_throttle).
    shared: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def user_key(username: str) -> str:
        """Usernames compare case-insensitively, so `Admin` and `admin` share one count."""
        return username.strip().casefold()[:128]

    def _pairs(self, username: str, address: str) -> Iterable[tuple[KeyThrottle, str]]:
        return ((self.users, self.user_key(username)), (self.addresses, address[:128]))

    def begin(self, *, username: str, address: str) -> Verdict:
        """Let an attempt through (and count it in flight), or say how long to wait."""
        with self._lock:
            wait = max(t.wait(k) for t, k in self._pairs(username, address))
            if wait > 0:
                return Verdict(False, max(1, math.ceil(wait)))
            for t, k in self._pairs(username, address):
                t.start(k)
            return Verdict(True)

    def failed(self, *, username: str, address: str) -> int:
        """Record a failed attempt; the lockout it starts, in whole seconds (0 for none)."""
        with self._lock:
            delay = max(t.failed(k) for t, k in self._pairs(username, address))
            return math.ceil(delay)

    def succeeded(self, *, username: str, address: str) -> None:
        """Record a successful attempt: the user's count resets, the address's does not.

        An attacker with one valid account could otherwise clear their address's count
        between guesses at other accounts.
        """
        with self._lock:
            self.users.succeeded(self.user_key(username))
            self.addresses.succeeded(address[:128], reset=False)

    def adopt(self, kind: str, key: str, *, failures: int, lockout_s: float) -> None:
        """Replace this process's count of a `user` or `address` key by the shared one."""
        with self._lock:
            throttle = self.users if kind == "user" else self.addresses
            throttle.adopt(self.user_key(key) if kind == "user" else key[:128],
                           failures=failures, lockout_s=lockout_s)

    def abandoned(self, *, username: str, address: str) -> None:
        """An attempt that ended without a verdict (an error): no longer in flight."""
        with self._lock:
            for t, k in self._pairs(username, address):
                t.abandoned(k)
