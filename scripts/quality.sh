#!/usr/bin/env bash
# Model quality in one table, training nothing of sentmon's: scores a bundle (default: the shipped
# models/default) and the TF-IDF + logistic-regression baseline (scripts/baseline.py) on the same
# held-out test split, the one `sentmon train` holds out, and prints both side by side with
# per-class F1 and the differences.
#
#   ./scripts/quality.sh [--model DIR] [--data DIR]   (defaults: models/default, ../shared/data/en)
#
# The baseline runs in its own venv, .venv-quality/ (git-ignored, scikit-learn; about 1 minute to
# set up the first time). The baseline's logistic regressions are fitted on the split's training
# rows with C and class weighting chosen on validation, as scripts/baseline.py documents. The
# report is also written to target/quality/report.txt, and the raw figures beside it as JSON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

model=models/default
data=../shared/data/en
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quality: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
done
if [ ! -d "$data" ]; then
  echo "quality: labelled data directory '$data' not found; pass --data DIR (the shared data lives in ../shared/data/en)" >&2
  exit 66
fi

./scripts/setup.sh
cargo build --release --locked --quiet
sentmon=target/release/sentmon

venv=.venv-quality
python_packages=(scikit-learn==1.9.1 scipy==1.17.1 numpy==2.4.6)
if ! "$venv/bin/python" -c 'import sklearn, scipy, numpy' 2>/dev/null; then
  echo "quality: setting up the baseline's venv in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir "${python_packages[@]}"
fi

out=target/quality
rm -rf "$out"
mkdir -p "$out"
"$sentmon" split --data "$data" --out "$out/split" >&2
for task in topic sentiment; do
  # One libtorch thread: the daemon's policy, and fast on a shared 2-core machine.
  "$sentmon" eval --model "$model" --data "$out/split/test.jsonl" --task "$task" --json > "$out/model.$task.json"
done
"$venv/bin/python" scripts/baseline.py "$out/split" > "$out/baseline.json"
"$venv/bin/python" scripts/quality_report.py --model-label "$model" \
  "$out/model.topic.json" "$out/model.sentiment.json" "$out/baseline.json" | tee "$out/report.txt"
