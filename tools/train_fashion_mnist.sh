#!/usr/bin/env bash
# Trains the *_fashion_mnist presets on the full Fashion-MNIST training split
# (60,000 images, shuffled, repeated) and publishes their weights into zoo/
# (tools/publish_weights.py evaluates the full 10,000-image test split, draws
# the 8x8 sample grid and measures the receptive field).
#   tools/train_fashion_mnist.sh [PRESET ...]
# A run directory that already exists is resumed (crash-safe checkpoints), so
# a run cut short (a session's end, a crash) continues with the same command;
# publish_weights records every leg's command on the card.
#
# Recipe (issue 12): sized so that one run takes about 60-90 minutes on 2 CPU
# cores with bfloat16 (`--precision auto`; an AVX2-only CPU computes in
# float32, about 3x slower); Adam 2e-3 with 200 warm-up steps and a cosine
# decay to 0 over the run, and a warmed-up weight average (EMA 0.999) that
# the card's bits/dim and samples use; 11 x 500 steps of 64 images (5.9
# passes). The Gated PixelCNN pair: 14 blocks of 5x5 (each output sees its
# whole causal context at 28x28, measured), 32 maps.
#
# Where the shipped weights came from (each card has the exact commands):
# - gated_pixelcnn_fashion_mnist: this script, on a 2-core BF16 CPU;
# - gated_pixelcnn_conditional_fashion_mnist: this script for steps 1-2000
#   on a CPU, steps 2001-5500 on an H200 (`tools/train_gpu_jax.py --resume`);
# - pixelcnn_fashion_mnist (re-sized: 15 blocks of 48 maps): 40 s on an
#   H200 with `tools/train_gpu_jax.py`, the same recipe over a wall-clock
#   budget. Its CPU recipe here ran to the end as a check (2-core BF16 CPU,
#   56.5 min, 2.8961 on the full test split; not shipped, the H200 weights
#   are lower);
# - row_lstm_fashion_mnist (re-sized: 6 layers of 48 maps): this script, on
#   a 2-core BF16 CPU (103 min, about 1.07 s a step; 2.8869);
# - diagonal_bilstm_fashion_mnist (re-sized: 3 layers of 32 maps, out 128):
#   this script on a 2-core BF16 CPU, in three legs: epochs 1-5 of a
#   10-epoch schedule, resumed with --epochs 14 (the cosine stretched to
#   3,500 steps from step 1,251 on), then resumed again with --epochs 22
#   (stretched to 5,500 steps from step 3,501 on); the legs' commands are on
#   its card. A step of 64 costs about 1.35 s there (the diagonal recurrence
#   is 55 sequential steps per layer and direction); 22 x 250 steps took
#   132 minutes. Run here, the script gives one 22-epoch schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(gated_pixelcnn_fashion_mnist
    gated_pixelcnn_conditional_fashion_mnist pixelcnn_fashion_mnist
    row_lstm_fashion_mnist diagonal_bilstm_fashion_mnist)
# The recipe every preset here shares (the step budget varies).
recipe="--batch-size 64 --lr 0.002 --lr-schedule cosine --warmup-steps 200 --ema 0.999 --seed 0 --test-split test[:1000]"
gated="--model gated_pixelcnn --dataset fashion_mnist --hidden-maps 32 --num-layers 14 --kernel-size 5 --output-maps 64 --epochs 11 --steps-per-epoch 500 $recipe --samples-per-epoch 16"
for preset in "${presets[@]}"; do
    case $preset in
        gated_pixelcnn_fashion_mnist) args="$gated" ; publish=--update-config ;;
        gated_pixelcnn_conditional_fashion_mnist) args="$gated --num-classes 10" ; publish=--update-config ;;
        pixelcnn_fashion_mnist|row_lstm_fashion_mnist) args="--preset $preset --epochs 11 --steps-per-epoch 500 $recipe --samples-per-epoch 16" ; publish= ;;
        diagonal_bilstm_fashion_mnist) args="--model diagonal_bilstm --dataset fashion_mnist --hidden-maps 32 --num-layers 3 --output-maps 128 --epochs 22 --steps-per-epoch 250 $recipe --samples-per-epoch 0" ; publish=--update-config ;;
        *) echo "unknown preset: $preset" >&2 ; exit 2 ;;
    esac
    cmd="pixel-keras train $args --out runs/$preset --verbose 2"
    mode=
    [ -f "runs/$preset/state.json" ] && mode=--resume
    echo "== $(date -u +%H:%M:%S) $cmd $mode"
    $cmd $mode
    python tools/publish_weights.py "runs/$preset" "$preset" --command "${PUBLISHED_COMMAND:-$cmd}" $publish
done
