#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set-up (idempotent), then every test.
# CI (.ci/run) calls exactly this; README's second quick-start command is this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
cargo test --locked --all-targets
