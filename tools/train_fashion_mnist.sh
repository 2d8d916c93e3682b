#!/usr/bin/env bash
# Trains the five *_fashion_mnist presets on the full Fashion-MNIST training
# split (60,000 images, shuffled, repeated) with the same data budget each:
# 8 "epochs" of 150 steps of 64 images = 76,800 images (1.28 passes), Adam
# 2e-3; then publishes their weights into zoo/ (tools/publish_weights.py
# evaluates the full 10,000-image test split).
#   tools/train_fashion_mnist.sh [PRESET ...]
# A run directory that already exists is resumed (crash-safe checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(pixelcnn_fashion_mnist row_lstm_fashion_mnist
    diagonal_bilstm_fashion_mnist gated_pixelcnn_fashion_mnist
    gated_pixelcnn_conditional_fashion_mnist)
for preset in "${presets[@]}"; do
    mode=--overwrite
    [ -f "runs/$preset/state.json" ] && mode=--resume
    cmd="pixel-keras train --preset $preset --epochs 8 --steps-per-epoch 150 --batch-size 64 --lr 0.002 --seed 0 --test-split test[:1000] --samples-per-epoch 0 --out runs/$preset $mode --verbose 2"
    echo "== $(date -u +%H:%M:%S) $cmd"
    $cmd
    python tools/publish_weights.py "runs/$preset" "$preset" --command "${PUBLISHED_COMMAND:-$cmd}"
done
