#!/usr/bin/env python3
"""Where the telemetry cost of `serve` goes: the server with all telemetry on, and with one part
of it switched off at a time, each against telemetry off, under wrk at one connection count.

All servers run at once (same machine state); each round runs every variant once, in an order
turned by one per round, and a variant's cost is the median over rounds of its throughput
relative to the "off" run of the same round. Loopback only; same bodies and sink as
bench/serve_bench.py.

    python3 bench/serve_ablation.py [--rounds 3] [--duration 4] [--conns 32]

Variants (environment on top of "on", see bench/serve_bench.py):
  on               everything on (100% sampling, OTLP/HTTP export, JSON logs to two files)
  no-access-log    RUST_LOG=warn: no per-request log line (warnings and errors still logged)
  no-span-export   no OTLP endpoint: trace ids, context and response headers, nothing exported
  sampler-off      OTEL_TRACES_SAMPLER=always_off: ids made, no span recorded or exported
  sampled-0.1      parentbased_traceidratio 0.1: one request in ten recorded and exported
  sdk-disabled     OTEL_SDK_DISABLED=true: logs and metrics only, no trace ids
  big-batch        16x the standard export batch (8192 spans, queue 32768): the per-export share
"""
import os, signal, statistics, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench import free_port, server_args, start_server, start_sink, write_bodies, wrk  # noqa: E402

VARIANTS = {
    "on": {},
    "no-access-log": {"RUST_LOG": "warn"},
    "no-span-export": {"OTEL_EXPORTER_OTLP_ENDPOINT": None},
    "sampler-off": {"OTEL_TRACES_SAMPLER": "always_off"},
    "sampled-0.1": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "sdk-disabled": {"OTEL_SDK_DISABLED": "true"},
    "big-batch": {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192", "OTEL_BSP_MAX_QUEUE_SIZE": "32768"},
}


def main():
    ap = server_args(__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="serve-ablation-")
    bodies = os.path.join(tmp, "bodies.jsonl")
    write_bodies(a.archive, bodies)
    sink_port = free_port()
    sink = start_sink(sink_port)
    names = ["off"] + a.variants
    servers = {}
    for name in names:
        port = free_port()
        mode = "off" if name == "off" else name
        proc, _ = start_server(a.serve, a.model, port, mode, tmp, sink_port, overrides=VARIANTS.get(name))
        servers[name] = (proc, port)
        wrk(port, 8, 2, bodies)  # warm-up
    rps = {n: [] for n in names}
    for round_ in range(a.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            rps[name].append(wrk(servers[name][1], a.conns, a.duration, bodies)["rps"])
            print(f"round {round_ + 1} {name:>15} {rps[name][-1]:.0f} requests/s", flush=True)
    for proc, _ in servers.values():
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)

    print(f"\n{a.conns} connections, {a.rounds} rounds of {a.duration} s\n")
    print("| server | requests/s (median) | cost vs off (median of rounds) | by round |")
    print("|---|---|---|---|")
    print(f"| off | {statistics.median(rps['off']):.0f} | | |")
    for name in a.variants:
        costs = [100 * (1 - v / off) for v, off in zip(rps[name], rps["off"])]
        print(f"| {name} | {statistics.median(rps[name]):.0f} | {statistics.median(costs):.1f}% "
              f"| {', '.join(f'{c:.1f}' for c in costs)} |")


if __name__ == "__main__":
    main()
