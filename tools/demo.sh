#!/usr/bin/env bash
# The pixel-keras demo on a fresh machine (Python 3.11, 2 CPU cores, no GPU):
#   1. installs the package (and Fashion-MNIST from Debian when apt exists),
#   2. trains a small PixelCNN on real Fashion-MNIST for about 4 minutes,
#   3. prints test bits/dim on the first 1000 test images,
#   4. writes a 4x4 grid of samples to demo/samples.png.
# Re-running resumes nothing: it starts a fresh run in demo/ (use
# DEMO_MINUTES=10 for longer training).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/bootstrap.sh

out="demo"
minutes="${DEMO_MINUTES:-4}"
pixel-keras train --overwrite \
    --model pixelcnn --dataset fashion_mnist \
    --train-split "train" --test-split "test[:1000]" \
    --hidden-maps 16 --residual-blocks 4 --output-maps 64 \
    --batch-size 32 --lr 0.002 --epochs 100 --steps-per-epoch 200 \
    --max-minutes "$minutes" --samples-per-epoch 0 \
    --out "$out/run"
pixel-keras evaluate "$out/run" --split "test[:1000]"
pixel-keras sample "$out/run" --num-samples 16 --seed 0 \
    --out "$out/samples.png" --overwrite
echo "Sample grid: $out/samples.png"
