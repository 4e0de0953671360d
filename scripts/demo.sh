#!/usr/bin/env bash
# README's first quick-start command: set-up (idempotent), then the main job on an embedded
# default: classify the sample headlines in examples/headlines.txt with the shipped model.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
cargo run --locked --release --quiet -- classify --model models/default examples/headlines.txt
