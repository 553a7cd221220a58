#!/usr/bin/env bash
# The 2D tables of docs/results-2d.md beside the paper's, in one go (about 2 hours on an idle
# 2-core machine): the out-of-distribution table with all four models and three seeds (dense
# context, as the paper), then Table 1 with three seeds for MetaSDF and the CNP with 4- and
# 9-layer set encoders.
# Every run trains for the same wall-clock time (MINUTES) with the cpu preset, two at a time with
# one thread each. Output: runs/paper-2d/*.txt (the tables), runs/paper-2d/<table>/<run>/ (runs).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-3}
OUT=${OUT:-runs/paper-2d}
mkdir -p "$OUT"
for variant in standard unseen-digits rotated composite; do
    [ -e "runs/mnist-$variant.zarr" ] || sdfkit prepare-mnist -o "runs/mnist-$variant.zarr" --variant "$variant"
done
for variant in unseen-digits rotated composite; do
    python benchmarks/results_2d.py "runs/mnist-$variant.zarr" --label "$variant" \
        --models metasdf,cnp,autodecoder,hypernet --contexts dense --seeds 3 --minutes "$MINUTES" --eval-limit 100 \
        --runs "$OUT/ood-$variant" --parallel 2 --threads 1 --no-reference autodecoder,hypernet \
        | tee "$OUT/ood-$variant.txt"
done
python benchmarks/results_2d.py runs/mnist-standard.zarr --models metasdf,cnp,cnp9 --seeds 3 \
    --minutes "$MINUTES" --eval-limit 200 --runs "$OUT/table1" --parallel 2 --threads 1 \
    | tee "$OUT/table1.txt"
