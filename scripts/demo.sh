#!/usr/bin/env bash
# The main job on one machine: build, get the dataset, train if needed, serve with logs to a
# folder, load it with every kind of traffic, print what loadgen and the server saw, stop cleanly.
# Env: NEWSGROUPS_ARCHIVE (local dataset copy), DEMO_PORT (3000), DEMO_DURATION (30s).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${DEMO_PORT:-3000}
duration=${DEMO_DURATION:-30s}
out=reports/demo
cargo build --release -p train -p serve -p loadgen
if [ ! -f data/model.bin ]; then
  target/release/train ${NEWSGROUPS_ARCHIVE:+--archive "$NEWSGROUPS_ARCHIVE"}
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "error: something already listens on 127.0.0.1:$port; stop it or set DEMO_PORT" >&2
  exit 1
fi
mkdir -p "$out/logs"
target/release/serve --model data/model.bin --addr "127.0.0.1:$port" --log-dir "$out/logs" >"$out/serve.stdout.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "error: serve did not start:" >&2; cat "$out/serve.stdout.log" >&2; exit 1; }
  sleep 0.1
done
target/release/loadgen --host "http://127.0.0.1:$port" --duration "$duration" --report-dir "$out"
kill -TERM $pid
wait $pid && echo "serve stopped cleanly (exit 0)"
trap - EXIT
echo "server logs: $out/logs/ (JSON lines with trace ids) and $out/serve.stdout.log"
echo "load reports: $out/report.html, $out/report.md, $out/report.json, $out/summary.json"
