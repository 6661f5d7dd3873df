#!/usr/bin/env bash
# Sets up scikit-learn in a venv, builds `train`, and runs the end-to-end comparison and the
# reference's accuracy over 5 seeds. Usage: bench/train_vs_sklearn.sh [ARCHIVE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
archive=${1:-${NEWSGROUPS_ARCHIVE:-data/20news-bydate.tar.gz}}
runs=${2:-5}
venv=${BENCH_VENV:-target/bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "scikit-learn==1.9.*"
cargo build -q --release -p train
echo "== scikit-learn reference, 5 seeds"
"$venv/bin/python" bench/sklearn_reference.py "$archive"
echo "== end to end, $runs alternating runs each"
"$venv/bin/python" bench/compare_train.py "$archive" --train target/release/train --python "$venv/bin/python" --runs "$runs"
