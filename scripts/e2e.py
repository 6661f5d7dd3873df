#!/usr/bin/env python3
"""End-to-end proof against a real Prometheus: every dashboard query and recording rule has data,
every alert rule evaluates, the SLO burn alerts stay quiet under the normal load mix, and one trace
id links the response header, the exported spans and the JSON log line (through the Loki
derived-field regex Grafana is provisioned with).

Starts, on loopback only: an OTLP/HTTP receiver (in this process), `serve`, Debian's
`prometheus` with the very rule files the Helm values deploy, and `loadgen`. Every process it
starts is stopped on exit, also on failure or Ctrl-C.

Usage: scripts/e2e.py [--load-duration 40s] [--keep]  (run by `make e2e`, which builds first)
Needs: target/release/{serve,loadgen}, data/model.bin, `prometheus` on PATH (apt-get install
prometheus), Python packages opentelemetry-proto and PyYAML, and the dataset (NEWSGROUPS_ARCHIVE
or the archive `train` cached) for loadgen's documents.
"""

from __future__ import annotations

import argparse
import glob
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted(ROOT.glob("helm-config/prometheus/rules/*.yml"))
DATASOURCES = ROOT / "grafana/datasources/datasources.yaml"
STEPS = ("tokenize", "vectorize", "weigh", "predict")
SAMPLE_DOCUMENTS = (
    "The goalie stopped the puck in overtime and the crowd went wild.",
    "My new brakes squeal when the engine is cold; is the dealer right?",
    "He hit a home run in the ninth inning, the pitcher never recovered.",
    "Rode my bike with a new helmet and leather jacket on the highway.",
    "Which oil do you use for a V8 engine in winter?",
)


class Failure(Exception):
    """A check that did not hold; the message says which and why."""


def log(msg: str) -> None:
    print(f"e2e: {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")


# --- OTLP/HTTP receiver -------------------------------------------------------------------------


class OtlpReceiver:
    """Collects the spans `serve` exports over OTLP/HTTP protobuf, decoded with the real proto."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.spans: list = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    for rs in request.resource_spans:
                        for ss in rs.scope_spans:
                            receiver.spans.extend(ss.spans)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans_of(self, trace_id: str) -> list:
        with self.lock:
            return [s for s in self.spans if s.trace_id.hex() == trace_id]

    def close(self) -> None:
        self.server.shutdown()


# --- processes ----------------------------------------------------------------------------------


class Processes:
    """Every child process, stopped (TERM, then KILL) whatever happens."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log_path: Path, env=None) -> subprocess.Popen:
        out = open(log_path, "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.children.append((name, p))
        return p

    def stop_all(self) -> None:
        for _, p in self.children:
            if p.poll() is None:
                p.terminate()
        for name, p in self.children:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 10 s; killing it")
                p.kill()
                p.wait()


# --- Prometheus checks --------------------------------------------------------------------------


def prom_query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url, timeout=10)
    reply = json.loads(body)
    if status != 200 or reply.get("status") != "success":
        raise Failure(f"query failed ({status}): {expr}\n  {reply.get('error', body[:300])}")
    return reply["data"]["result"]


def prometheus_config(serve_addr: str) -> str:
    rules = "\n".join(f"  - {json.dumps(str(r))}" for r in RULES)
    return f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
{rules}
scrape_configs:
  - job_name: doc-classifier
    static_configs:
      - targets: [{json.dumps(serve_addr)}]
        labels: {{namespace: doc-classifier, app: doc-classifier}}
"""


def rfc3339_seconds(stamp: str) -> float:
    """Prometheus's RFC 3339 times carry nanoseconds; datetime takes at most microseconds."""
    from datetime import datetime

    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


def seen_after(base: str, moment: float) -> bool:
    """True once the server was scraped and every rule group evaluated after `moment`."""
    scraped = prom_query(base, 'timestamp(up{job="doc-classifier"})')
    if not scraped or float(scraped[0]["value"][1]) <= moment:
        return False
    groups = rule_groups(base)
    return bool(groups) and all(rfc3339_seconds(g["lastEvaluation"]) > moment for g in groups)


def dashboard_queries() -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check_dashboards.py"), "--list-prometheus-exprs"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_panels(base: str) -> int:
    queries = dashboard_queries()
    if not queries:
        raise Failure("no Prometheus panel queries found in grafana/dashboards")
    empty = []
    for q in queries:
        if not prom_query(base, q["expr"]):
            empty.append(f'  dashboard "{q["dashboard"]}", panel "{q["panel"]}": {q["expr"]}')
    if empty:
        raise Failure("panels with no data:\n" + "\n".join(empty))
    return len(queries)


def rule_groups(base: str) -> list:
    status, body = http_get(f"{base}/api/v1/rules")
    if status != 200:
        raise Failure(f"/api/v1/rules answered {status}")
    return json.loads(body)["data"]["groups"]


def check_rules(base: str) -> tuple[int, int]:
    groups = rule_groups(base)
    rules = [r for g in groups for r in g["rules"]]
    if not rules:
        raise Failure(f"Prometheus loaded no rules from {[str(r) for r in RULES]}")
    broken = [f'  {r["name"]}: {r.get("lastError")}' for r in rules if r.get("health") != "ok"]
    if broken:
        raise Failure("rules that do not evaluate:\n" + "\n".join(broken))
    recording = [r for r in rules if r["type"] == "recording"]
    empty = [f"  {r['name']} = {r['query']}" for r in recording if not prom_query(base, r["name"])]
    if empty:
        raise Failure("recording rules with no data:\n" + "\n".join(empty))
    alerts = [r for r in rules if r["type"] == "alerting"]
    burning = [
        f'  {r["name"]} ({r["labels"].get("slo")}): {r["state"]}'
        for r in alerts
        if r.get("labels", {}).get("slo") and r["state"] != "inactive"
    ]
    if burning:
        raise Failure("error-budget burn alerts active under the normal load mix:\n" + "\n".join(burning))
    if not any(r.get("labels", {}).get("slo") for r in alerts):
        raise Failure("no SLO burn-rate alert (an alert with an `slo` label) was loaded")
    return len(recording), len(alerts)


# --- trace and log correlation ------------------------------------------------------------------


def derived_field_regex() -> re.Pattern:
    import yaml

    provisioning = yaml.safe_load(DATASOURCES.read_text())
    for ds in provisioning.get("datasources", []):
        for field in (ds.get("jsonData") or {}).get("derivedFields", []) or []:
            if field.get("datasourceUid") == "tempo":
                return re.compile(field["matcherRegex"])
    raise Failure(f"no derived field linking to Tempo in {DATASOURCES}")


def send_sample(serve_base: str) -> list[str]:
    trace_ids = []
    for text in SAMPLE_DOCUMENTS:
        req = urllib.request.Request(f"{serve_base}/predict", data=text.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200:
                raise Failure(f"sample request answered {r.status}")
            trace_id = r.headers.get("x-trace-id", "")
            if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
                raise Failure(f"no trace id in the response headers: {dict(r.headers)}")
            trace_ids.append(trace_id)
    return trace_ids


def check_trace(receiver: OtlpReceiver, trace_id: str) -> None:
    wait_until(f"5 spans of trace {trace_id}", lambda: len(receiver.spans_of(trace_id)) >= 5, 15)
    spans = receiver.spans_of(trace_id)
    roots = [s for s in spans if s.name == "POST /predict"]
    if len(roots) != 1:
        raise Failure(f"trace {trace_id}: {len(roots)} server spans named 'POST /predict'")
    children = {s.name for s in spans if s.parent_span_id == roots[0].span_id}
    if children != set(STEPS):
        raise Failure(f"trace {trace_id}: step spans {sorted(children)}, expected {STEPS}")


def check_log(log_dir: Path, trace_id: str, regex: re.Pattern) -> None:
    lines = [
        line
        for path in sorted(log_dir.glob("*"))
        for line in path.read_text(errors="replace").splitlines()
        if trace_id in line
    ]
    served = [line for line in lines if json.loads(line).get("message") == "request served"]
    if len(served) != 1:
        raise Failure(f"trace {trace_id}: {len(served)} access-log lines in {log_dir} (want 1)")
    for line in lines:
        found = regex.findall(line)
        if found != [trace_id]:
            raise Failure(
                f"the Loki derived-field regex {regex.pattern!r} extracts {found} from {line}"
            )


# --- the run ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--load-duration", default=os.environ.get("E2E_LOAD_DURATION", "40s"),
                   help="how long loadgen runs (default 40s; rate windows need a few scrapes)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, Prometheus data)")
    return p.parse_args()


def binaries() -> dict[str, str]:
    found = {
        "serve": ROOT / "target/release/serve",
        "loadgen": ROOT / "target/release/loadgen",
        "model": ROOT / "data/model.bin",
    }
    missing = [str(p) for p in found.values() if not p.exists()]
    if missing:
        raise Failure(f"missing {missing}; run `make e2e` (it builds and trains first)")
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(prometheus).exists():
        raise Failure("no `prometheus` binary; install it: apt-get install -y prometheus")
    return {**{k: str(v) for k, v in found.items()}, "prometheus": prometheus}


def run(args: argparse.Namespace, work: Path, procs: Processes) -> None:
    exe = binaries()
    receiver = OtlpReceiver()
    serve_addr = f"127.0.0.1:{free_port()}"
    serve_base = f"http://{serve_addr}"
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="200")
    env.pop("OTEL_SDK_DISABLED", None)
    serve = procs.start("serve", [exe["serve"], "--model", exe["model"], "--addr", serve_addr,
                                  "--log-dir", str(work / "logs")], work / "serve.out", env)
    wait_until("serve /readyz", lambda: http_get(f"{serve_base}/readyz")[0] == 200, 30)
    log(f"serve ready on {serve_addr}, exporting spans to {receiver.endpoint}")

    (work / "prometheus.yml").write_text(prometheus_config(serve_addr))
    prom_base = f"http://127.0.0.1:{free_port()}"
    procs.start("prometheus", [exe["prometheus"], f"--config.file={work / 'prometheus.yml'}",
                               f"--storage.tsdb.path={work / 'tsdb'}",
                               f"--web.listen-address={prom_base.removeprefix('http://')}"],
                work / "prometheus.out")
    wait_until("Prometheus /-/ready", lambda: http_get(f"{prom_base}/-/ready")[0] == 200, 30)
    log(f"prometheus ready on {prom_base} with {len(RULES)} rule files")

    log(f"loadgen for {args.load_duration}")
    loadgen = subprocess.run([exe["loadgen"], "--host", serve_base, "--duration", args.load_duration,
                              "--report-dir", str(work / "loadgen")], cwd=ROOT)
    if loadgen.returncode != 0:
        raise Failure(f"loadgen exited with {loadgen.returncode}")
    load_end = time.time()
    wait_until("a scrape and a rule evaluation after the load ended",
               lambda: seen_after(prom_base, load_end), 30)

    panels = check_panels(prom_base)
    log(f"{panels} dashboard queries return data")
    recording, alerts = check_rules(prom_base)
    log(f"{recording} recording rules return data; {alerts} alert rules evaluate; no SLO burn alert active")

    regex = derived_field_regex()
    trace_ids = send_sample(serve_base)
    serve.send_signal(signal.SIGTERM)
    if serve.wait(timeout=30) != 0:
        raise Failure(f"serve exited with {serve.returncode} on SIGTERM")
    for trace_id in trace_ids:
        check_trace(receiver, trace_id)
        check_log(work / "logs", trace_id, regex)
    log(f"{len(trace_ids)} requests: same trace id in header, 5 spans and log line; regex extracts it")
    receiver.close()


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="e2e-"))
    procs = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        run(args, work, procs)
        log(f"passed in {time.monotonic() - started:.0f} s")
        return 0
    except Failure as e:
        print(f"e2e: FAILED: {e}", file=sys.stderr)
        print(f"e2e: logs in {work}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
