#!/usr/bin/env python3
"""CPU per request of each thread of `serve` under wrk, user and kernel time apart, telemetry off
and on: where the cost of telemetry goes, including what callgrind cannot see (system calls,
cache lines moving between cores, the OTLP sink's own CPU).

Per-thread times come from /proc/PID/task/*/stat (clock ticks), taken around one wrk run of
DURATION seconds at CONNS connections after a 2 s warm-up; they are divided by that run's
requests. Modes run one after the other in the order given ("sampled" is everything on with 10%
of the traces sampled, "big-batch" everything on with export batches of 8192 spans, "grpc"
everything on with the spans exported over OTLP/gRPC).

    python3 bench/serve_threads.py [--conns 32] [--duration 8] [--modes off on off on]
"""
import collections, os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench import cpu_seconds, free_port, server_args, start_server, start_sink, write_bodies, wrk  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# "big-batch": everything on with 16x the standard export batch, to see the per-export share.
BIG_BATCH = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192", "OTEL_BSP_MAX_QUEUE_SIZE": "32768"}


def threads(pid):
    """Per thread name: [user ticks, system ticks, voluntary switches], summed over threads."""
    out = collections.defaultdict(lambda: [0, 0, 0])
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        switches = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("voluntary_ctxt"))
        t = out[name]
        t[0] += int(fields[11])
        t[1] += int(fields[12])
        t[2] += switches
    return out


def main():
    ap = server_args(__doc__)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--modes", nargs="+", default=["off", "on", "off", "on"], choices=["off", "on", "sampled", "big-batch", "grpc"])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="serve-threads-")
    bodies = os.path.join(tmp, "bodies.jsonl")
    write_bodies(a.archive, bodies)
    sink_port, grpc_port = free_port(), free_port()
    sink = start_sink(sink_port, grpc_port)
    grpc = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}"}
    print(f"| mode | requests/s | thread | user µs/request | system µs/request | voluntary switches/request |")
    print("|---|---|---|---|---|---|")
    for mode in a.modes:
        port = free_port()
        proc, _ = start_server(a.serve, a.model, port, "off" if mode == "off" else "on", tmp, sink_port,
                               0.1 if mode == "sampled" else 1.0,
                               overrides={"big-batch": BIG_BATCH, "grpc": grpc}.get(mode))
        wrk(port, a.conns, 2, bodies)
        before, sink_before = threads(proc.pid), cpu_seconds(sink.pid)
        r = wrk(port, a.conns, a.duration, bodies)
        after, sink_after = threads(proc.pid), cpu_seconds(sink.pid)
        requests = r["rps"] * a.duration
        total = [0.0, 0.0]
        for name in sorted(after):
            b = before.get(name, [0, 0, 0])
            user = (after[name][0] - b[0]) / TICK * 1e6 / requests
            system = (after[name][1] - b[1]) / TICK * 1e6 / requests
            switches = (after[name][2] - b[2]) / requests
            total[0] += user
            total[1] += system
            if user + system >= 0.05:
                print(f"| {mode} | {r['rps']:.0f} | {name} | {user:.2f} | {system:.2f} | {switches:.3f} |")
        print(f"| {mode} | {r['rps']:.0f} | **server, all threads** | {total[0]:.2f} | {total[1]:.2f} | |")
        if mode != "off":
            print(f"| {mode} | {r['rps']:.0f} | OTLP sink (its own process) | {(sink_after - sink_before) * 1e6 / requests:.2f} (user + system) | | |")
        proc.terminate()
        proc.wait()
    sink.terminate()


if __name__ == "__main__":
    main()
