#!/usr/bin/env bash
# The benchmark suite, sentmon against the Python way, in one run on this machine (about 10 minutes
# on 2 cores, plus about 3 minutes the first time to set up the Python venv):
#   1. classification alone: `cargo bench --bench throughput`, with the Python yardstick's model
#      (benches/python_way.py: a PyTorch LSTM of the shipped model's size) on the same texts;
#   2. end to end through the embedded broker: `cargo bench --bench pipeline`, sentmon, the Python
#      per-message consumer and the Python batched consumer on the same messages and topics;
#      messages/s, p50/p99 latency and the ratios sentmon / Python.
# The Python side lives in its own venv, .venv-bench/ (git-ignored, ~4.7 GB: torch pulls the CUDA
# wheels even for CPU use). The report is also written to target/bench-report.txt.
#
# SENTMON_BENCH_PYTHON_THREADS (default 1) sets torch.set_num_threads of the Python consumers;
# SENTMON_BENCH_ROUNDS (default 3) the rounds of the end-to-end bench. The soak is separate:
# `cargo bench --bench soak` (30 minutes; SENTMON_SOAK_MINUTES for a shorter run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh

venv=.venv-bench
# torch as libtorch (LIBTORCH.md); confluent-kafka, the Kafka client a Python team would use;
# numpy only silences torch's warning at import.
python_packages=(torch==2.13.0 confluent-kafka==2.16.1 numpy==2.4.6)
if ! "$venv/bin/python" -c 'import torch, confluent_kafka, numpy' 2>/dev/null; then
  echo "setting up the Python yardstick's venv in $venv (downloads about 2.7 GB)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir "${python_packages[@]}"
fi
export SENTMON_BENCH_PYTHON="$PWD/$venv/bin/python"

mkdir -p target
{
  echo "sentmon bench suite, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -srm)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  cargo bench --locked --quiet --bench throughput
  cargo bench --locked --quiet --bench pipeline
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee target/bench-report.txt
