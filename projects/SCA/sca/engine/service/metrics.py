"""Prometheus metrics in the text exposition format, kept by hand (no client library: a few
counters and histograms, one lock)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, total = [], 0
        for bound, count in zip((*self.buckets, "+Inf"), self.counts):
            total += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {total}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {self.sum:.6f}", f"{name}_count{braces} {total}"]
        return out


class ServiceMetrics:
    """Requests and errors by endpoint and status code, request latency, batch sizes and the
    embedding cache's hits and misses (each image encoded is a miss)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_regions = Histogram(SIZE_BUCKETS)
        self.batch_requests = Histogram(SIZE_BUCKETS)
        self.encoder_runs = 0  # images encoded
        self.cache_hits = 0

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[endpoint, status] += 1
            if endpoint not in self.latency:
                self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
            self.latency[endpoint].observe(seconds)

    def observe_batch(self, requests: int, regions: int) -> None:
        with self.lock:
            self.batch_requests.observe(requests)
            self.batch_regions.observe(regions)

    def observe_images(self, encoded: int, cached: int) -> None:
        with self.lock:
            self.encoder_runs += encoded
            self.cache_hits += cached

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text; ``gauges`` maps a name to (help, value)."""
        with self.lock:
            out = [
                "# HELP sca_http_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE sca_http_requests_total counter",
            ]
            for (endpoint, code), n in sorted(self.requests.items()):
                out.append(f'sca_http_requests_total{{endpoint="{endpoint}",code="{code}"}} {n}')
            errors: dict[int, int] = defaultdict(int)
            for (_, code), n in self.requests.items():
                if code >= 400:
                    errors[code] += n
            out += [
                "# HELP sca_http_errors_total HTTP answers with a 4xx or 5xx status, by status.",
                "# TYPE sca_http_errors_total counter",
            ]
            out += [f'sca_http_errors_total{{code="{c}"}} {n}' for c, n in sorted(errors.items())]
            out += [
                "# HELP sca_http_request_duration_seconds Time from request to answer.",
                "# TYPE sca_http_request_duration_seconds histogram",
            ]
            for endpoint, hist in sorted(self.latency.items()):
                out += hist.lines("sca_http_request_duration_seconds", f'endpoint="{endpoint}"')
            for name, hist, what in (
                ("sca_batch_regions", self.batch_regions, "Regions captioned per model call."),
                ("sca_batch_requests", self.batch_requests, "Requests served per model call."),
            ):
                out += [f"# HELP {name} {what}", f"# TYPE {name} histogram"]
                out += hist.lines(name, "")
            for name, value, what in (
                ("sca_image_encoder_runs_total", self.encoder_runs, "Images encoded."),
                (
                    "sca_embedding_cache_hits_total",
                    self.cache_hits,
                    "Requests whose image embedding was cached (encoder skipped).",
                ),
            ):
                out += [f"# HELP {name} {what}", f"# TYPE {name} counter", f"{name} {value}"]
        for name, (what, value) in gauges.items():
            out += [f"# HELP {name} {what}", f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(out) + "\n"
