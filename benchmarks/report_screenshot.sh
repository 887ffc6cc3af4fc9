#!/usr/bin/env bash
# Open figures.report's HTML page in a real browser (headless Chromium from Debian) and take
# a screenshot: the check that the page renders from disk with no server and no network.
# Not run in CI.  Needs `apt-get install -y chromium`.
#
#   benchmarks/report_screenshot.sh RESULTS_DIR [OUT_DIR] [WIDTHxHEIGHT]
#
# Writes OUT_DIR/report.html (python -m figures.report) and OUT_DIR/report.png.
set -euo pipefail
results=${1:?usage: $0 RESULTS_DIR [OUT_DIR] [WIDTHxHEIGHT]}
out=${2:-report-out}
size=${3:-1400x2400}
python -m figures.report --results "$results" --out "$out" --quiet
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# Every switch that would reach the network is off; the page must not need it.
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --user-data-dir="$profile" --hide-scrollbars \
  --window-size="${size/x/,}" --screenshot="$(realpath "$out")/report.png" \
  "file://$(realpath "$out")/report.html" 2>/dev/null
echo "screenshot: $out/report.png"
