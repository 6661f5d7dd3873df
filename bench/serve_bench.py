#!/usr/bin/env python3
"""Load benchmark of `serve` with wrk: telemetry all on vs all off, in one run, same bodies.

All on: 100% sampling, OTLP/HTTP export to a local sink, JSON logs to stdout (a file) and to a
rolling log file. All off: `--telemetry off` (no logs, no spans, no metrics). With `--sampled R`,
also all on with a ratio R of the traces sampled (`parentbased_traceidratio`): the lever a
deployment has when the full cost is too much. Bodies are the
1,590 test documents of the 4 rec.* groups as `{"text": ...}`, posted round-robin by the BentoML
peer's own wrk script (`../shared/peer/bodies.lua`), so the peer's figures compare directly.
Also reports readiness time after start, peak RSS, and the CPU time the server and the OTLP sink
used during each run (from /proc/<pid>/stat): the sink (crates/serve/examples/otlp_sink.rs,
keep-alive HTTP/1.1, one thread) runs in its own process so its cost is told apart from the
server's. Loopback only.

    python3 bench/serve_bench.py --archive ARCHIVE [--duration 10] [--conns 1 8 32] [--peer]
"""
import argparse, json, os, re, signal, socket, statistics, subprocess, sys, tarfile, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "..", "shared", "peer")
CATEGORIES = ["rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey"]


def write_bodies(archive, path):
    n = 0
    with tarfile.open(archive, "r:gz") as tar, open(path, "w") as out:
        for m in tar:
            p = m.name.split("/")
            if m.isfile() and len(p) == 3 and p[1] in CATEGORIES and p[0].endswith("test"):
                out.write(json.dumps({"text": tar.extractfile(m).read().decode("latin-1")}) + "\n")
                n += 1
    return n


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SINK = os.path.join(ROOT, "target", "release", "examples", "otlp_sink")


def start_sink(port, grpc_port=None):
    """The OTLP/HTTP receiver (crates/serve/examples/otlp_sink.rs), built if needed; OTLP/gRPC too
    on `grpc_port` if given."""
    if not os.path.exists(SINK):
        subprocess.run(["cargo", "build", "--release", "-p", "serve", "--example", "otlp_sink"], cwd=ROOT, check=True)
    sink = subprocess.Popen([SINK, str(port)] + ([str(grpc_port)] if grpc_port else []), stdout=subprocess.PIPE, text=True)
    if sink.stdout.readline().strip() != "ready":
        sys.exit("the OTLP sink did not start")
    return sink


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def start_server(serve, model, port, mode, tmp, sink_port, ratio=1.0, overrides=None):
    """mode: "off" (`--telemetry off`), "on" (everything on, `ratio` of the traces sampled).
    `overrides` sets environment variables after those of the mode (None unsets one), and `mode`
    names the server's stdout and log files."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("OTEL_") or k == "RUST_LOG":
            del env[k]
    args = [serve, "--model", model, "--addr", f"127.0.0.1:{port}"]
    if mode != "off":
        logdir = os.path.join(tmp, f"logs-{mode}")
        args += ["--log-dir", logdir]
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}", OTEL_TRACES_SAMPLER="always_on",
                   RUST_LOG="info")
        if ratio < 1.0:
            env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=str(ratio))
    else:
        args += ["--telemetry", "off"]
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    out = open(os.path.join(tmp, f"serve-{mode}.stdout"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 10:
            sys.exit(f"serve ({mode}) did not become ready")
        time.sleep(0.002)
    return proc, time.perf_counter() - t0


def wrk(port, conns, duration, bodies):
    env = dict(os.environ, BODIES=bodies)
    cmd = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", os.path.join(PEER, "bodies.lua"),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def to_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def parse_wrk(out):
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for p in ("50", "90", "99"):
        r[f"p{p}"] = to_ms(re.search(rf"\s{p}(?:\.000)?%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    r["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    r["socket_errors"] = errors.group(1) if errors else ""
    return r


def run_peer(conns):
    """Runs the BentoML peer's own script (workers=2) and parses its wrk lines. Its script runs
    wrk with 2 threads, so it cannot measure a single connection."""
    conns = [c for c in conns if c >= 2]
    out = subprocess.run(["bash", os.path.join(PEER, "run.sh"), str(free_port()), "2", *map(str, conns)],
                         capture_output=True, text=True, check=True).stdout
    results = {}
    for block in out.split("== BentoML peer")[1:]:
        c = int(re.search(r"connections=(\d+)", block).group(1))
        r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", block).group(1))}
        for p in ("50", "90", "99"):
            r[f"p{p}"] = to_ms(re.search(rf"\s{p}(?:\.000)?%\s+(\S+)", block).group(1))
        results[c] = r
    return results


def median_run(rs):
    """Each figure of a point, the median over its rounds (non-2xx: the total)."""
    out = {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p90", "p99", "server_cpu_s", "sink_cpu_s")}
    out["non2xx"] = sum(r["non2xx"] for r in rs)
    return out


def server_args(description):
    """The arguments every serve benchmark takes: the archive, the binary and the model."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default=os.environ.get("NEWSGROUPS_ARCHIVE", "data/20news-bydate.tar.gz"))
    ap.add_argument("--serve", default="target/release/serve")
    ap.add_argument("--model", default="data/model.bin")
    return ap


def main():
    ap = server_args(__doc__)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the interleaved runs; each figure is then the median of its rounds")
    ap.add_argument("--peer", action="store_true", help="also run ../shared/peer/run.sh (BentoML) with the same bodies")
    ap.add_argument("--sampled", type=float, metavar="RATIO",
                    help="also measure everything on with this ratio of traces sampled (parentbased_traceidratio)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="serve-bench-")
    bodies = os.path.join(tmp, "bodies.jsonl")
    print(f"bodies: {write_bodies(a.archive, bodies)} test documents; work dir {tmp}", flush=True)
    sink_port = free_port()
    sink = start_sink(sink_port)

    modes = ["off", "on"] + ([f"on, {a.sampled:g} sampled"] if a.sampled is not None else [])
    servers, results = {}, {m: {} for m in modes}
    for mode in modes:
        port = free_port()
        ratio = a.sampled if mode not in ("off", "on") else 1.0
        slug = mode if mode in ("off", "on") else "sampled"  # names its stdout and log files
        proc, ready = start_server(a.serve, a.model, port, slug, tmp, sink_port, ratio)
        servers[mode] = (proc, port, ready)
        wrk(port, 8, 3, bodies)  # warm-up
    runs = {m: {c: [] for c in a.conns} for m in modes}
    for round_ in range(a.rounds):
        # Interleaved, so every mode sees the same machine; the order turns each round, so no
        # mode always runs right after the same one.
        order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]
        for c in a.conns:
            for mode in order:
                pid = servers[mode][0].pid
                server_cpu, sink_cpu = cpu_seconds(pid), cpu_seconds(sink.pid)
                r = wrk(servers[mode][1], c, a.duration, bodies)
                r["server_cpu_s"] = cpu_seconds(pid) - server_cpu
                r["sink_cpu_s"] = cpu_seconds(sink.pid) - sink_cpu
                runs[mode][c].append(r)
                print(f"round {round_ + 1} {mode:>3} c={c:<3} {r}", flush=True)
    for mode in modes:
        for c in a.conns:
            results[mode][c] = median_run(runs[mode][c])
    memory = {}
    for mode, (proc, port, ready) in servers.items():
        memory[mode] = rss(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        if code != 0:
            sys.exit(f"serve ({mode}) exited with {code}")
    sink.send_signal(signal.SIGTERM)
    sink_stats = json.loads(sink.communicate(timeout=10)[0].strip().splitlines()[-1])
    peer = run_peer(a.conns) if a.peer else {}

    print()
    print("| connections | telemetry | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | server CPU µs/request | sink CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in a.conns:
        for mode in reversed(modes):
            r = results[mode][c]
            per_request = 1e6 * r["server_cpu_s"] / max(1.0, r["rps"] * a.duration)
            print(f"| {c} | {mode} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p90']:.3f} | {r['p99']:.3f} | {r['non2xx']} "
                  f"| {per_request:.1f} | {r['sink_cpu_s']:.2f} |")
        if c in peer:
            r = peer[c]
            print(f"| {c} | BentoML peer | {r['rps']:.0f} | {r['p50']:.3f} | {r['p90']:.3f} | {r['p99']:.3f} | | | |")
    print()
    for c in a.conns:
        on, off = results["on"][c], results["off"][c]
        line = f"c={c}: telemetry cost"
        for mode in modes[1:]:
            # Each round's on and off ran one after the other: their ratio is steadier than the
            # ratio of medians when the machine's speed drifts between rounds.
            costs = [100 * (1 - n["rps"] / f["rps"]) for n, f in zip(runs[mode][c], runs["off"][c])]
            line += f" [{mode}] {statistics.median(costs):.1f}% of throughput"
            if len(costs) > 1:
                line += f" (median; by round: {', '.join(f'{x:.1f}%' for x in costs)})"
        if c in peer:
            line += (f"; vs BentoML: {on['rps'] / peer[c]['rps']:.0f}x requests/s, "
                     f"p99 {on['p99'] / peer[c]['p99']:.4f} of the peer's")
        print(line)
    for mode, (proc, port, ready) in servers.items():
        print(f"telemetry {mode}: ready {ready * 1000:.0f} ms after start; RSS {memory[mode][0] / 2**20:.1f} MiB, "
              f"peak {memory[mode][1] / 2**20:.1f} MiB")
    sink_cpu = sum(results["on"][c]["sink_cpu_s"] for c in a.conns)
    print(f"OTLP sink received {sink_stats['requests']} export requests, {sink_stats['bytes'] / 2**20:.1f} MiB "
          f"(every mode, warm-ups included), using {sink_cpu:.2f} CPU-s during the measured runs with telemetry on")


if __name__ == "__main__":
    main()
