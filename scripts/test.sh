#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set-up (idempotent), the format and lint
# gate, then every test. CI (.ci/run) calls exactly this; README's second quick-start command is this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
# The gate runs before the tests: both take seconds on a warm build, and formatting or lint drift
# caught here never lands. Clippy covers tests, benches and examples too (--all-targets).
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
