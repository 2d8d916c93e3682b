#!/usr/bin/env bash
# Trains the four *_digits presets on scikit-learn digits (CPU, minutes) and
# publishes their weights into zoo/ (tools/publish_weights.py).
#   tools/train_digits.sh [PRESET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(pixelcnn_digits row_lstm_digits diagonal_bilstm_digits gated_pixelcnn_digits)
for preset in "${presets[@]}"; do
    cmd="pixel-keras train --preset $preset --epochs 80 --batch-size 64 --lr 0.003 --seed 0 --samples-per-epoch 0 --out runs/$preset --overwrite --verbose 0"
    echo "== $cmd"
    $cmd
    python tools/publish_weights.py "runs/$preset" "$preset" --command "$cmd"
done
