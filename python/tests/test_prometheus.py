"""A real Prometheus (Debian's ``prometheus`` package, which
scripts/setup-deps.sh installs) scrapes two real daemons while calls run
between them; PromQL through Prometheus's HTTP API sees the traffic. This is
also the check that what /metrics serves parses as Prometheus's text format:
a target that does not parse is ``up == 0``."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

import axon

from conftest import die_with_parent, free_port, start_daemons, until_connected

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus binary (scripts/setup-deps.sh installs Debian's)")

CALLS = 200


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


class Prometheus:
    def __init__(self, tmp_path, targets: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: axond\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        self.log = tmp_path / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict]:
        reply = http_json(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def wait_for(self, promql: str, check, timeout: float = 45.0) -> list[dict]:
        """Polls until `check(result)` holds; the last result otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if check(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def value(sample: dict) -> float:
    return float(sample["value"][1])


@pytest.fixture
def scraped(tmp_path):
    ports = [free_port(), free_port()]
    daemons = start_daemons(tmp_path, 2, "prom",
                            sets=[[f"metrics.listen=127.0.0.1:{p}"] for p in ports])
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{p}" for p in ports])
    yield daemons, prometheus
    prometheus.stop()
    for d in daemons:
        d.stop()


def test_prometheus_scrapes_calls_across_two_daemons(scraped):
    (a, b), prometheus = scraped
    with axon.connect(b.socket, name="server") as server_client, \
            axon.connect(a.socket, name="caller") as caller_client:
        server = server_client.endpoint("echo").server(concurrency=4)

        @server.method()
        def echo(request):
            return axon.Reply(request.header, request.tensors)

        with server:
            caller = caller_client.endpoint("caller")
            x = np.arange(1024, dtype=np.float32)
            until_connected(lambda: caller.call(f"{b.name}/echo", "echo", x, timeout=5).wait(),
                            errors=(ConnectionError,))
            for _ in range(CALLS - 1):
                reply = caller.call(f"{b.name}/echo", "echo", x).wait(10)
                np.testing.assert_array_equal(np.from_dlpack(reply.tensors[0]), x)

            # Both targets scraped and parsed.
            up = prometheus.wait_for('up{job="axond"}',
                                     lambda r: len(r) == 2 and all(value(s) == 1 for s in r))
            assert len(up) == 2 and all(value(s) == 1 for s in up), up

            # The server's method, as its client reported it to its daemon.
            calls = prometheus.wait_for(
                'axon_calls_total{endpoint="echo",method="echo"}',
                lambda r: len(r) == 1 and value(r[0]) == CALLS)
            assert len(calls) == 1 and value(calls[0]) == CALLS, calls
            assert calls[0]["metric"]["instance"] == f"127.0.0.1:{b.sets[0].rsplit(':', 1)[1]}"

            # A latency quantile from the histogram's buckets: finite, positive.
            p99 = prometheus.query(
                'histogram_quantile(0.99, axon_call_duration_seconds_bucket{method="echo"})')
            assert len(p99) == 1 and 0 < value(p99[0]) < 10, p99

            # Messages each way between the two nodes, summed over both daemons.
            sent = prometheus.wait_for(
                'sum(axon_peer_messages_total{direction="sent"})',
                lambda r: r and value(r[0]) >= 2 * CALLS)
            assert sent and value(sent[0]) >= 2 * CALLS, sent

            # The caller's session, by its client name.
            session = prometheus.wait_for(
                'axon_session_messages_total{client="caller",direction="sent"}',
                lambda r: r and value(r[0]) >= CALLS)
            assert session and value(session[0]) >= CALLS, session


def test_dashboard_queries_parse_in_prometheus(scraped):
    """Every query of deploy/grafana/axond-dashboard.json, with its variables
    filled in, is valid PromQL to a real Prometheus."""
    _, prometheus = scraped
    dashboard = json.loads(
        (pathlib.Path(__file__).resolve().parents[2] / "deploy" / "grafana" /
         "axond-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    for expr in exprs:
        prometheus.query(expr.replace("$instance", ".*"))  # asserts status "success"
