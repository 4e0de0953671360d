#!/usr/bin/env bash
# README's first quick-start command: set-up (idempotent), then the live demo: an embedded Kafka
# broker, a generated stream of financial headlines with a negative spike, the full pipeline with
# the shipped model, alerts printed as they fire. Extra arguments go to `sentmon demo`
# (e.g. --duration 90); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
cargo run --locked --release --quiet -- demo "$@"
