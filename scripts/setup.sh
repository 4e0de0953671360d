#!/usr/bin/env bash
# One-time (idempotent) set-up for building and testing sentmon on Debian 12:
#   1. the Debian packages the build needs (C toolchain for librdkafka, zlib, ssl, sasl);
#   2. Prometheus and Alertmanager (promtool, amtool and the servers), which the tests of deploy/
#      run: rule unit tests and an end-to-end alert through a real Prometheus and Alertmanager;
#   3. libtorch 2.13.0 (what tch 0.26.0 expects) laid out in .libtorch/ from the PyPI wheels.
# Why PyPI: pytorch.org is not reachable from our machines. Why a lean layout: the full
# `pip install torch` venv is 4.7 GB; the four CPU libraries plus two small CUDA stubs that
# libtorch_cpu.so links against are all a CPU build needs (see docs/ARCHITECTURE.md).
# Re-running it when everything is in place takes well under a second.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
libtorch_dir="$repo_root/.libtorch"
torch_version=2.13.0

log() { printf 'setup: %s\n' "$*" >&2; }

# Installs the named Debian packages that are missing (extra apt-get options first, e.g.
# --no-install-recommends); does nothing, quickly, when all are installed.
install_missing_packages() {
  local apt_options=() missing=()
  while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do apt_options+=("$1"); shift; done
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_options[@]}" "${missing[@]}" >/dev/null
}

install_debian_packages() {
  install_missing_packages build-essential pkg-config zlib1g-dev libssl-dev libsasl2-dev libzstd-dev python3-pip \
    unzip ca-certificates curl
}

# Debian's prometheus (promtool) and prometheus-alertmanager (amtool, the server as
# prometheus-alertmanager). Without recommends: those pull in node-exporter and friends. The
# packages' services are not started by the tests, which run their own on loopback.
install_prometheus_tools() {
  install_missing_packages --no-install-recommends prometheus prometheus-alertmanager
}

# name==version sha256 : file inside the wheel -> destination inside .libtorch
wheels=(
  "torch==$torch_version 60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
  "nvidia-cuda-runtime==13.0.96 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cuda-cupti==13.0.85 4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"
)

install_libtorch() {
  if [ -f "$libtorch_dir/build-version" ] && [ "$(cat "$libtorch_dir/build-version")" = "$torch_version" ] \
     && [ -f "$libtorch_dir/lib/libtorch_cpu.so" ] && [ -f "$libtorch_dir/lib/libcudart.so.13" ]; then
    return
  fi
  log "laying out libtorch $torch_version in $libtorch_dir (about 540 MB from PyPI)"
  local download_dir
  download_dir=$(mktemp -d)
  trap 'rm -rf "$download_dir"' RETURN
  for entry in "${wheels[@]}"; do
    local requirement=${entry%% *} digest=${entry##* }
    # pip matches platform tags exactly, so the three manylinux tags are all needed.
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
      --platform manylinux_2_17_x86_64 -d "$download_dir" "$requirement"
    local wheel_file
    wheel_file=$(ls "$download_dir"/"$(echo "${requirement%%==*}" | tr '-' '_')"-*.whl)
    echo "$digest  $wheel_file" | sha256sum --check --quiet -
  done
  local staging="$libtorch_dir.partial"
  rm -rf "$staging"
  mkdir -p "$staging/lib"
  unzip -q "$download_dir"/torch-*.whl 'torch/include/*' 'torch/share/*' \
    'torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' 'torch/lib/libtorch.so' 'torch/lib/libgomp.so.1' \
    -d "$download_dir/torch_unpacked"
  mv "$download_dir/torch_unpacked/torch/include" "$staging/include"
  mv "$download_dir/torch_unpacked/torch/share" "$staging/share"
  mv "$download_dir"/torch_unpacked/torch/lib/* "$staging/lib/"
  # Never libtorch_cuda*.so: torch-sys links torch_cuda whenever that file is present.
  unzip -q -j "$download_dir"/nvidia_cuda_runtime-*.whl 'nvidia/cu13/lib/libcudart.so.13' -d "$staging/lib"
  unzip -q -j "$download_dir"/nvidia_cuda_cupti-*.whl 'nvidia/cu13/lib/libcupti.so.13' -d "$staging/lib"
  # The wheel has no build-version file; torch-sys checks the version only when it finds one.
  echo "$torch_version" > "$staging/build-version"
  rm -rf "$libtorch_dir"
  mv "$staging" "$libtorch_dir"
  log "libtorch ready ($(du -sh "$libtorch_dir" | cut -f1))"
}

install_debian_packages
# The Dockerfile's build stage sets SENTMON_SETUP_TEST_TOOLS=0: an image build runs no tests.
[ "${SENTMON_SETUP_TEST_TOOLS:-1}" = "0" ] || install_prometheus_tools
install_libtorch
command -v cargo >/dev/null || { log "cargo not found: install Rust with rustup (https://rustup.rs) first"; exit 1; }

# scripts/test.sh (and so CI) runs `cargo fmt --check` and `cargo clippy` before the tests; rustup's
# minimal profile leaves both out.
install_lint_tools() {
  if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    return
  fi
  command -v rustup >/dev/null || { log "cargo fmt or cargo clippy missing, and no rustup to add them"; exit 1; }
  log "adding the rustfmt and clippy components"
  rustup component add rustfmt clippy
}

[ "${SENTMON_SETUP_TEST_TOOLS:-1}" = "0" ] || install_lint_tools
