#!/usr/bin/env bash
# Times `make demo` in a fresh clone of this repository (target: under 20 minutes on 2 CPU cores)
# and prints the per-model numbers the default study's bars are about.
# Usage: benchmarks/demo_time.sh [clone-dir]   (pip's download cache is used if present)
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dir=${1:-$(mktemp -d)/robustxai}
git clone --quiet "$repo" "$dir"
cd "$dir"
start=$(date +%s)
make setup >/dev/null
setup_done=$(date +%s)
make demo >/dev/null
end=$(date +%s)
echo "setup: $((setup_done - start)) s, study: $((end - setup_done)) s, make demo total: $((end - start)) s"
.venv/bin/python benchmarks/check_default_study.py results/tables/models.csv
.venv/bin/python benchmarks/check_explainer_study.py results
