"""Load test of the HTTP service (``tools/load_test.py``): concurrent clients on loopback against
a server process started for each phase, with dynamic batching and then one request at a time.

Each request is one held-out shapes image (``sca_shapes_test``, rendered if absent) with its
ground-truth boxes as prompts, base64 in JSON; client ``c``'s ``k``-th request is image
``(c + clients * k) % 100``, so that the requests in flight hold different images and an image
comes back only after the embedding cache has forgotten it. Reported per phase: answers by
status, latency percentiles, regions per second over the phase's wall time, mean requests and
regions per model call (from ``/metrics``) and the server's RSS after loading, after the first
``clients x 50 / 8`` answers and at the end. Bounded: ``--requests`` per client and
``--max-seconds`` per phase.
"""

from __future__ import annotations

import argparse
import base64
import ctypes.util
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sca_cpu_malloc import jemalloc_environment

from ..data.shapes import load_sca_shapes

PHASES = {"batched": [], "one-at-a-time": ["--no-batching"]}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="config YAML or model-zoo name")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--max-seconds", type=float, default=600, help="per phase")
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
    parser.add_argument("--server-args", default="", help="more tools/serve.py flags, quoted")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def shapes_requests() -> list[tuple[bytes, int]]:
    """(JSON body, number of prompts) per held-out shapes image."""
    out = []
    for record in load_sca_shapes("test"):
        image = base64.b64encode(Path(record["file_name"]).read_bytes()).decode()
        boxes = [a["bbox"] for a in record["annotations"]]
        out.append((json.dumps({"image": image, "boxes": boxes}).encode(), len(boxes)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def pressure_stall_s() -> dict[str, float]:
    """Seconds since boot that the machine's tasks stalled (Linux PSI): all of them waiting for
    memory (``memory_full``), some waiting for a CPU (``cpu_some``). The difference over a phase
    tells how much other processes got in its way; empty where PSI is absent."""
    out = {}
    for resource, kind in (("memory", "full"), ("cpu", "some")):
        try:
            with open(f"/proc/pressure/{resource}") as f:
                for line in f:
                    if line.startswith(kind):
                        out[f"{resource}_{kind}"] = int(line.rsplit("total=", 1)[1]) / 1e6
        except (OSError, ValueError, IndexError):
            pass
    return out


def _get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    """``python -m sca.engine.service`` on a free loopback port, under jemalloc where present
    (as ``tools/serve.py`` runs), logging to ``log``."""

    def __init__(self, config: str, opts: list[str], flags: list[str], log: Path):
        self.port = _free_port()
        env = jemalloc_environment(dict(os.environ), ctypes.util.find_library("jemalloc"))
        command = [sys.executable, "-m", "sca.engine.service", "--config-file", config]
        command += ["--port", str(self.port), "--max-queue", "1024", *flags, *opts]
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
            )
        deadline = time.monotonic() + 600
        while True:
            try:
                if _get(self.port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def metrics(self) -> str:
        return _get(self.port, "/metrics")[1].decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def run_phase(server: Server, requests, clients: int, per_client: int, max_seconds: float):
    """The answers of ``clients`` threads sending ``per_client`` requests each."""
    results: list[tuple[float, int, int]] = []  # latency s, status, regions
    lock = threading.Lock()
    checkpoint = max(1, clients * per_client // 8)
    rss_at: dict[str, float] = {}
    deadline = time.monotonic() + max_seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        headers = {"Content-Type": "application/json"}
        for k in range(per_client):
            if time.monotonic() > deadline:
                break
            body, regions = requests[(c + clients * k) % len(requests)]
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/caption", body, headers)
                response = conn.getresponse()
                answer = json.loads(response.read())
                status = response.status
                got = len(answer.get("regions", [])) if status == 200 else 0
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
                status, got = 599, 0  # no answer: counted as a server error
            with lock:
                results.append((time.perf_counter() - start, status, got))
                if len(results) == checkpoint:
                    rss_at["after_first"] = rss_mb(server.proc.pid)
        conn.close()

    rss_at["start"] = rss_mb(server.proc.pid)
    stalls = pressure_stall_s()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    rss_at["end"] = rss_mb(server.proc.pid)
    stalls = {k: round(v - stalls[k], 1) for k, v in pressure_stall_s().items() if k in stalls}
    latency = np.array([r[0] for r in results if r[1] == 200]) * 1000
    statuses: dict[str, int] = {}
    for _, status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    text = server.metrics()
    regions = sum(r[2] for r in results)
    return {
        "requests": len(results),
        "statuses": statuses,
        "server_errors": sum(n for s, n in statuses.items() if int(s) >= 500),
        "seconds": round(wall, 2),
        "regions": regions,
        "regions_per_s": round(regions / wall, 2),
        "requests_per_s": round(len(results) / wall, 2),
        "latency_ms": {
            p: round(float(np.percentile(latency, q)), 1) if len(latency) else None
            for p, q in (("p50", 50), ("p90", 90), ("p99", 99))
        },
        "mean_batch_requests": round(
            _metric(text, "sca_batch_requests_sum") / _metric(text, "sca_batch_requests_count"), 2
        ),
        "mean_batch_regions": round(
            _metric(text, "sca_batch_regions_sum") / _metric(text, "sca_batch_regions_count"), 2
        ),
        "image_encoder_runs": _metric(text, "sca_image_encoder_runs_total"),
        "host_stall_s": stalls,
        "rss_mb": {
            "after_load": round(rss_at["start"], 1),
            f"after_{checkpoint}_requests": round(rss_at.get("after_first", float("nan")), 1),
            "end": round(rss_at["end"], 1),
        },
    }


def report(results: dict, clients: int, per_client: int) -> str:
    lines = [
        f"{clients} clients x {per_client} requests, loopback",
        "",
        "| phase | answers | server errors | p50 ms | p99 ms | regions/s | requests/model call "
        "| RSS MB: loaded / first 1/8 / end | host stalls s: memory, CPU |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in results.items():
        rss = " / ".join(f"{v:.0f}" for v in r["rss_mb"].values())
        lines.append(
            f"| {name} | {r['statuses']} | {r['server_errors']} | {r['latency_ms']['p50']} | "
            f"{r['latency_ms']['p99']} | {r['regions_per_s']} | {r['mean_batch_requests']} | "
            f"{rss} | {', '.join(str(v) for v in r['host_stall_s'].values())} |"
        )
    if {"batched", "one-at-a-time"} <= set(results):
        gain = results["batched"]["regions_per_s"] / results["one-at-a-time"]["regions_per_s"]
        lines.append(f"\nbatching: {gain:.2f}x the regions/s of one request at a time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the phases; exit code 1 when any request got a 5xx or no answer."""
    args = get_parser().parse_args(argv)
    requests = shapes_requests()
    results = {}
    for name in args.phases:
        flags = PHASES[name] + args.server_args.split()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"sca_load_test_{name}.log"
        server = Server(args.config_file, args.opts, flags, log)
        try:
            results[name] = run_phase(
                server, requests, args.clients, args.requests, args.max_seconds
            )
        finally:
            server.stop()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    print(report(results, args.clients, args.requests))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))
    return int(any(r["server_errors"] for r in results.values()))
