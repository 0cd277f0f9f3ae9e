"""In-process counters and a latency histogram, rendered as Prometheus text (format 0.0.4).

Each uvicorn worker keeps its own numbers; with `--workers N` a scrape sees one worker.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable

#: Upper bounds (seconds) of the decision-latency buckets.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        # Every decision the verifier can make, present from the start (at 0), so that
        # rates over them work before the first one happens.
        self.decisions: Counter[tuple[str, int]] = Counter(
            {("failure", 401): 0, ("failure", 403): 0, ("error", 503): 0}
        )
        # Plain attributes, not a Counter: these are bumped on every request.
        self.token_hits = self.token_misses = 0
        self.session_hits = self.session_misses = 0
        self._bucket_counts = [0] * (len(BUCKETS) + 1)
        self._latency_sum = 0.0
        self._successes = 0

    def observe(self, outcome: str, status: int, seconds: float) -> None:
        self.decisions[outcome, status] += 1
        self._bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def observe_success(self, seconds: float) -> None:
        """`observe("success", 204, seconds)`, without building a key on the hot path."""
        self._successes += 1
        self._bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def render(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> str:
        out = [
            "# HELP authgate_verifier_decisions_total Decisions by outcome and status.",
            "# TYPE authgate_verifier_decisions_total counter",
        ]
        decisions = Counter(self.decisions)
        decisions["success", 204] = self._successes  # always present, even at 0
        for (outcome, status), count in sorted(decisions.items()):
            labels = f'outcome="{outcome}",status="{status}"'
            out.append(f"authgate_verifier_decisions_total{{{labels}}} {count}")
        out += [
            "# HELP authgate_verifier_cache_lookups_total Cache lookups by cache and result.",
            "# TYPE authgate_verifier_cache_lookups_total counter",
        ]
        for cache, result, count in (
            ("token", "hit", self.token_hits),
            ("token", "miss", self.token_misses),
            ("session", "hit", self.session_hits),
            ("session", "miss", self.session_misses),
        ):
            labels = f'cache="{cache}",result="{result}"'
            out.append(f"authgate_verifier_cache_lookups_total{{{labels}}} {count}")
        out += [
            "# HELP authgate_verifier_decision_seconds Time to decide one subrequest.",
            "# TYPE authgate_verifier_decision_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), self._bucket_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'authgate_verifier_decision_seconds_bucket{{le="{le}"}} {cumulative}')
        out.append(f"authgate_verifier_decision_seconds_sum {self._latency_sum}")
        out.append(f"authgate_verifier_decision_seconds_count {cumulative}")
        for name, (help_text, read) in sorted(gauges.items()):
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        return "\n".join(out) + "\n"
