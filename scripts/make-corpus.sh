#!/usr/bin/env bash
# Builds a benchmark corpus of at least MIN_MB megabytes from a directory of log files, by
# repeating each file (so each output file keeps its own format for detection).
#   scripts/make-corpus.sh SAMPLES_DIR OUT_DIR [MIN_MB=100]
# Without logs of your own: `scrubd synth --format django --bytes 100MB --out corpus.log`.
set -euo pipefail
src=${1:?usage: make-corpus.sh SAMPLES_DIR OUT_DIR [MIN_MB]}
out=${2:?usage: make-corpus.sh SAMPLES_DIR OUT_DIR [MIN_MB]}
min_mb=${3:-100}
mkdir -p "$out"
total_in=$(cat "$src"/* | wc -c)
[ "$total_in" -gt 0 ] || { echo "no input in $src" >&2; exit 1; }
copies=$(( (min_mb * 1000000 + total_in - 1) / total_in ))
for f in "$src"/*; do
  [ -f "$f" ] || continue
  dst="$out/$(basename "$f")"
  : > "$dst"
  for _ in $(seq "$copies"); do cat "$f" >> "$dst"; done
done
echo "corpus: $out ($(cat "$out"/* | wc -c) bytes, $copies copies of each file)"
