"""What `/metrics` reports, in the Prometheus text format: requests, tokens in and out,
queue depth, active slots, generation speed and time to first token.

Counters are bumped from the scheduler thread and from the event loop, so every update
takes one lock; reading them builds the text under the same lock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# time-to-first-token histogram buckets, in seconds
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RATE_WINDOW = 10.0  # seconds of generated tokens that the tokens/s gauge averages over


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}  # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.prompt_cached = 0  # prompt tokens found in a slot's cache, not decoded
        self.generated = 0
        self.finished = 0  # generations that ran to an end
        self.busy_seconds = 0.0  # summed over finished generations, admission to end
        self.ttft_counts = [0] * (len(TTFT_BUCKETS) + 1)
        self.ttft_sum = 0.0
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) for the rate
        # live values read from the scheduler when the text is built
        self.gauges: Callable[[], dict[str, int]] = dict

    def request(self, endpoint: str, status: int) -> None:
        with self._lock:
            key = (endpoint, status)
            self.requests[key] = self.requests.get(key, 0) + 1

    def prompt(self, tokens: int, cached: int) -> None:
        with self._lock:
            self.prompt_tokens += tokens
            self.prompt_cached += cached

    def tokens_out(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.generated += n
            self._recent.append((now, n))
            self._trim(now)

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft_sum += seconds
            for i, bound in enumerate(TTFT_BUCKETS):
                if seconds <= bound:
                    self.ttft_counts[i] += 1
                    break
            else:
                self.ttft_counts[-1] += 1

    def finish(self, seconds: float) -> None:
        with self._lock:
            self.finished += 1
            self.busy_seconds += seconds

    def mean_request_seconds(self) -> float:
        with self._lock:
            return self.busy_seconds / self.finished if self.finished else 1.0

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()

    def rate(self) -> float:
        """Generated tokens per second over the last RATE_WINDOW seconds."""
        now = time.monotonic()
        self._trim(now)
        return sum(n for _, n in self._recent) / RATE_WINDOW

    def text(self) -> str:
        gauges = self.gauges()
        with self._lock:
            out: list[str] = []

            def metric(name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> None:
                out.append(f"# HELP gene_jit_{name} {doc}")
                out.append(f"# TYPE gene_jit_{name} {kind}")
                out.extend(f"gene_jit_{name}{labels} {_num(v)}" for labels, v in samples)

            metric("requests_total", "counter", "HTTP requests answered, by endpoint and status",
                   [(f'{{endpoint="{e}",status="{s}"}}', n) for (e, s), n in sorted(self.requests.items())])
            metric("prompt_tokens_total", "counter", "prompt tokens of admitted requests",
                   [("", self.prompt_tokens)])
            metric("prompt_tokens_cached_total", "counter",
                   "prompt tokens reused from a slot's cache instead of decoded", [("", self.prompt_cached)])
            metric("generated_tokens_total", "counter", "tokens generated", [("", self.generated)])
            metric("queue_depth", "gauge", "requests waiting for a slot", [("", gauges.get("queue", 0))])
            metric("slots_active", "gauge", "slots holding a request", [("", gauges.get("active", 0))])
            metric("slots_total", "gauge", "slots (sequences decoded together)", [("", gauges.get("slots", 0))])
            metric("tokens_per_second", "gauge",
                   f"tokens generated per second over the last {RATE_WINDOW:g} seconds", [("", self.rate())])
            buckets, total = [], 0
            for bound, n in zip((*TTFT_BUCKETS, float("inf")), self.ttft_counts, strict=True):
                total += n
                buckets.append((f'_bucket{{le="{"+Inf" if bound == float("inf") else f"{bound:g}"}"}}', total))
            metric("time_to_first_token_seconds", "histogram",
                   "seconds from a request's arrival to its first generated token",
                   [*buckets, ("_sum", self.ttft_sum), ("_count", total)])
            return "\n".join(out) + "\n"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
