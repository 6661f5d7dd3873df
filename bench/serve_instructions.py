#!/usr/bin/env python3
"""Instructions per request of `serve`, telemetry on vs off, counted by valgrind's callgrind:
stable on a noisy shared machine where wrk's requests/s move by several percent between runs.

The server runs under callgrind (all threads: workers, span export, log writers, metrics upkeep);
after a warm-up, the counters are zeroed, REQUESTS sequential POSTs with the benchmark's bodies are
sent on one keep-alive connection, and the counters are dumped. "On" is the benchmark's all-on
setup (100% sampling, OTLP/HTTP export to the otlp_sink example, JSON logs to stdout and --log-dir).
Prints instructions per request, and the heaviest inclusive functions for each mode.

    python3 bench/serve_instructions.py [--requests 3000] [--modes off on] [--top 40]
"""
import http.client, json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench import ROOT, free_port, server_args, start_sink, write_bodies  # noqa: E402


def wait_ready(port, proc, limit=180):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            sys.exit("serve exited before it was ready")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("serve did not become ready")


def post_all(port, bodies, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(n):
        c.request("POST", "/predict", body=bodies[i % len(bodies)], headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"POST /predict answered {r.status}")
    c.close()


def callgrind(pid, flag):
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)


def measure(a, mode, bodies, tmp, sink_port):
    port = free_port()
    out = os.path.join(tmp, f"callgrind.{mode}.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "RUST_LOG"}
    args = [a.serve, "--model", a.model, "--addr", f"127.0.0.1:{port}"]
    if mode == "on":
        args += ["--log-dir", os.path.join(tmp, "logs")]
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}", OTEL_TRACES_SAMPLER="always_on",
                   RUST_LOG="info")
    else:
        args += ["--telemetry", "off"]
    log = open(os.path.join(tmp, f"serve-{mode}.log"), "w")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
                             *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc)
        post_all(port, bodies, a.warmup)
        time.sleep(1)
        callgrind(proc.pid, "-z")
        post_all(port, bodies, a.requests)
        callgrind(proc.pid, "-d")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    dumps = sorted(f for f in os.listdir(tmp) if f.startswith(f"callgrind.{mode}.out."))
    dump = os.path.join(tmp, dumps[0])  # the -d dump (the final one is written at exit)
    total = None
    with open(dump) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total, dump


def main():
    ap = server_args(__doc__)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--modes", nargs="+", default=["off", "on"])
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="serve-instr-")
    path = os.path.join(tmp, "bodies.jsonl")
    write_bodies(a.archive, path)
    with open(path, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f]
    sink_port = free_port()
    sink = start_sink(sink_port)
    results = {}
    try:
        for mode in a.modes:
            total, dump = measure(a, mode, bodies, tmp, sink_port)
            results[mode] = total / a.requests
            print(f"{mode}: {total} instructions for {a.requests} requests = {results[mode]:,.0f} per request ({dump})",
                  flush=True)
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", f"--threshold=100", dump],
                                 capture_output=True, text=True).stdout
            lines = [l for l in ann.splitlines() if "(" in l and ":" in l]
            print("\n".join(lines[: a.top]), flush=True)
    finally:
        sink.send_signal(signal.SIGTERM)
        print("sink:", sink.communicate(timeout=10)[0].strip().splitlines()[-1])
    if "on" in results and "off" in results:
        print(f"telemetry on costs {results['on'] - results['off']:,.0f} instructions per request "
              f"({100 * (results['on'] / results['off'] - 1):.0f}% over off)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
