#!/usr/bin/env bash
# Trains the five *_fashion_mnist presets on the full Fashion-MNIST training
# split (60,000 images, shuffled, repeated) for a fixed wall-clock budget each,
# then publishes their weights into zoo/ (tools/publish_weights.py evaluates the
# full 10,000-image test split).
#   tools/train_fashion_mnist.sh [PRESET ...]
# MINUTES (default 15) sets the per-model budget: training stops after the
# 150-step "epoch" during which the budget ran out.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${MINUTES:-15}
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(pixelcnn_fashion_mnist row_lstm_fashion_mnist
    diagonal_bilstm_fashion_mnist gated_pixelcnn_fashion_mnist
    gated_pixelcnn_conditional_fashion_mnist)
for preset in "${presets[@]}"; do
    cmd="pixel-keras train --preset $preset --epochs 1000 --steps-per-epoch 150 --max-minutes $minutes --batch-size 64 --lr 0.002 --seed 0 --test-split test[:1000] --samples-per-epoch 0 --out runs/$preset --overwrite --verbose 2"
    echo "== $(date -u +%H:%M:%S) $cmd"
    $cmd
    python tools/publish_weights.py "runs/$preset" "$preset" --command "$cmd"
done
