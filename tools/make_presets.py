"""Writes the built-in preset cards in zoo/ (config.json, metadata.json, README.md).

    python tools/make_presets.py            # (re)write every card, keep weights
    python tools/make_presets.py --check    # exit 1 if a card is out of date

The tables below are the single place where preset hyper-parameters are
chosen; the zoo itself only reads the JSON files. Existing `model.weights.h5`
files and the metadata keys that describe them (bits/dim, training command,
sha256, ...) are kept when a card is rewritten.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixel_keras import zoo  # noqa: E402
from pixel_keras.models.gated_pixel_cnn import PAPER_CONFIGS as GATED  # noqa: E402
from pixel_keras.models.pixel_rnn import PAPER_CONFIGS as RNN  # noqa: E402

PIXEL_RNN_PAPER = "van den Oord et al. 2016, Pixel Recurrent Neural Networks, arXiv:1601.06759"
GATED_PAPER = (
    "van den Oord et al. 2016b, Conditional Image Generation with PixelCNN "
    "Decoders, arXiv:1606.05328"
)


def rnn(key):
    config = dict(RNN[key])
    return config.pop("cell"), config


def cpu_note(epochs=8):
    """The Fashion-MNIST presets' note: how they were sized and trained."""
    images = epochs * 150 * 64
    note = (
        "Sized and trained for CPU (no GPU was available to this work): "
        f"{epochs} x 150 steps of 64 images drawn from the full 60,000-image "
        f"training split ({images:,} images, {images / 60000:.2f} passes), Adam "
        "2e-3, on 2 shared CPU cores (`tools/train_fashion_mnist.sh`; wall "
        "time below). Not converged: more steps (`--resume` with more "
        "`--epochs`) or a GPU would lower the bits/dim."
    )
    if epochs < 8:
        note += (
            f" Stopped after {epochs} of the 8 epochs the other Fashion-MNIST "
            "presets got, for lack of session time."
        )
    return note


CPU_NOTE = cpu_note()

PRESETS = {
    # --- paper-sized -------------------------------------------------------
    "pixelcnn_mnist": (
        "pixelcnn",
        dict(image_shape=[28, 28, 1], num_levels=2, hidden_maps=16,
             num_residual_blocks=7, output_maps=32),
        dict(paper=PIXEL_RNN_PAPER, dataset="tfds:binarized_mnist",
             notes="Binarized MNIST (paper: 81.30 nats test NLL for PixelCNN). The "
                   "paper's MNIST sizes are given for the Diagonal BiLSTM (7 layers, "
                   "h=16, 32 output maps); this PixelCNN uses the same sizes (our choice)."),
    ),
    "pixelcnn_cifar": (
        "pixelcnn",
        dict(image_shape=[32, 32, 3], num_levels=256, hidden_maps=128,
             num_residual_blocks=15, output_maps=1024),
        dict(paper=PIXEL_RNN_PAPER, dataset="cifar10",
             notes="Paper: 15 layers, h=128 (2h=256 maps in the residual stream), "
                   "1024-map output stack; CIFAR-10 test 3.14 bits/dim."),
    ),
    "row_lstm_cifar": (*rnn("row_lstm_cifar10"), dict(
        paper=PIXEL_RNN_PAPER, dataset="cifar10",
        notes="Paper: 12 layers, h=128; CIFAR-10 test 3.07 bits/dim.")),
    "diagonal_bilstm_cifar": (*rnn("diagonal_bilstm_cifar10"), dict(
        paper=PIXEL_RNN_PAPER, dataset="cifar10",
        notes="Paper: 12 layers, h=128; CIFAR-10 test 3.00 bits/dim.")),
    "diagonal_bilstm_mnist": (*rnn("diagonal_bilstm_binarized_mnist"), dict(
        paper=PIXEL_RNN_PAPER, dataset="tfds:binarized_mnist",
        notes="Paper: 7 layers, h=16, 32 output maps; binarized MNIST test 79.20 nats.")),
    "row_lstm_imagenet32": (*rnn("row_lstm_imagenet32"), dict(
        paper=PIXEL_RNN_PAPER, dataset="downsampled_imagenet/32x32",
        notes="Paper: 12 layers, h=384; ImageNet 32x32 test 3.86 bits/dim.")),
    "row_lstm_imagenet64": (*rnn("row_lstm_imagenet64"), dict(
        paper=PIXEL_RNN_PAPER, dataset="downsampled_imagenet/64x64",
        notes="Paper: 4 layers, h=512, no residual connections; ImageNet 64x64 "
              "test 3.63 bits/dim.")),
    "gated_pixelcnn_cifar": ("gated_pixelcnn", dict(GATED["gated_pixelcnn_cifar10"]), dict(
        paper=GATED_PAPER, dataset="cifar10",
        notes="The paper gives no separate CIFAR-10 size (3.03 bits/dim reported). "
              "Our choice: 15 gated layers of 128 maps, 5x5 filters, 1024-map output stack.")),
    "gated_pixelcnn_imagenet32": ("gated_pixelcnn", dict(GATED["gated_pixelcnn_imagenet32"]), dict(
        paper=GATED_PAPER, dataset="downsampled_imagenet/32x32",
        notes="Paper: 20 layers, 384 maps, 5x5 filters; ImageNet 32x32 test 3.83 "
              "bits/dim. The 1024-map output stack is our reading.")),
    "gated_pixelcnn_imagenet64": ("gated_pixelcnn", dict(GATED["gated_pixelcnn_imagenet64"]), dict(
        paper=GATED_PAPER, dataset="downsampled_imagenet/64x64",
        notes="Paper: 20 layers, 384 maps, 5x5 filters; ImageNet 64x64 test 3.57 "
              "bits/dim. The 1024-map output stack is our reading.")),
    # --- Fashion-MNIST: sized for CPU training (2 cores, ~15 min each) ------
    "pixelcnn_fashion_mnist": (
        "pixelcnn",
        dict(image_shape=[28, 28, 1], num_levels=256, hidden_maps=32,
             num_residual_blocks=5, output_maps=64),
        dict(paper=PIXEL_RNN_PAPER, dataset="fashion_mnist", notes=CPU_NOTE),
    ),
    "row_lstm_fashion_mnist": (
        "row_lstm",
        dict(image_shape=[28, 28, 1], num_levels=256, hidden_maps=32,
             num_layers=2, output_maps=64, kernel_size=3),
        dict(paper=PIXEL_RNN_PAPER, dataset="fashion_mnist", notes=CPU_NOTE),
    ),
    "diagonal_bilstm_fashion_mnist": (
        "diagonal_bilstm",
        dict(image_shape=[28, 28, 1], num_levels=256, hidden_maps=16,
             num_layers=2, output_maps=64),
        dict(paper=PIXEL_RNN_PAPER, dataset="fashion_mnist", notes=CPU_NOTE),
    ),
    "gated_pixelcnn_fashion_mnist": (
        "gated_pixelcnn",
        dict(image_shape=[28, 28, 1], num_levels=256, num_layers=5,
             hidden_maps=32, kernel_size=3, output_maps=64),
        dict(paper=GATED_PAPER, dataset="fashion_mnist", notes=cpu_note(6)),
    ),
    "gated_pixelcnn_conditional_fashion_mnist": (
        "gated_pixelcnn",
        dict(image_shape=[28, 28, 1], num_levels=256, num_layers=5,
             hidden_maps=32, kernel_size=3, output_maps=64, num_classes=10),
        dict(paper=GATED_PAPER, dataset="fashion_mnist",
             notes="Class-conditional on the 10 Fashion-MNIST labels (input `class_label`). "
                   + cpu_note(6)),
    ),
    # --- scikit-learn digits: minutes on CPU -------------------------------
    "pixelcnn_digits": (
        "pixelcnn",
        dict(image_shape=[8, 8, 1], num_levels=17, hidden_maps=16,
             num_residual_blocks=2, output_maps=32),
        dict(paper=PIXEL_RNN_PAPER, dataset="digits"),
    ),
    "row_lstm_digits": (
        "row_lstm",
        dict(image_shape=[8, 8, 1], num_levels=17, hidden_maps=16,
             num_layers=2, output_maps=32, kernel_size=3),
        dict(paper=PIXEL_RNN_PAPER, dataset="digits"),
    ),
    "diagonal_bilstm_digits": (
        "diagonal_bilstm",
        dict(image_shape=[8, 8, 1], num_levels=17, hidden_maps=16,
             num_layers=2, output_maps=32),
        dict(paper=PIXEL_RNN_PAPER, dataset="digits"),
    ),
    "gated_pixelcnn_digits": (
        "gated_pixelcnn",
        dict(image_shape=[8, 8, 1], num_levels=17, num_layers=4,
             hidden_maps=16, kernel_size=3, output_maps=32, num_classes=10),
        dict(paper=GATED_PAPER, dataset="digits",
             notes="Class-conditional on the digit label (input `class_label`)."),
    ),
    # --- tiny test presets ------------------------------------------------
    "test_pixelcnn": (
        "pixelcnn",
        dict(image_shape=[8, 8, 3], num_levels=256, hidden_maps=6,
             num_residual_blocks=1, output_maps=6),
        dict(dataset="cifar10", notes="Tiny preset for tests."),
    ),
    "test_row_lstm": (
        "row_lstm",
        dict(image_shape=[8, 8, 1], num_levels=256, hidden_maps=4,
             num_layers=1, output_maps=8, kernel_size=3),
        dict(dataset="fashion_mnist", notes="Tiny preset for tests."),
    ),
    "test_diagonal_bilstm": (
        "diagonal_bilstm",
        dict(image_shape=[8, 8, 3], num_levels=256, hidden_maps=6,
             num_layers=1, output_maps=6),
        dict(dataset="cifar10", notes="Tiny preset for tests."),
    ),
    "test_gated_pixelcnn": (
        "gated_pixelcnn",
        dict(image_shape=[8, 8, 3], num_levels=256, num_layers=2,
             hidden_maps=6, kernel_size=3, output_maps=6),
        dict(dataset="cifar10", notes="Tiny preset for tests."),
    ),
    "test_gated_pixelcnn_conditional": (
        "gated_pixelcnn",
        dict(image_shape=[8, 8, 1], num_levels=256, num_layers=2,
             hidden_maps=4, kernel_size=3, output_maps=8, num_classes=10),
        dict(dataset="fashion_mnist", notes="Tiny class-conditional preset for tests."),
    ),
}

# Metadata keys that describe trained weights; kept when a card is rewritten.
WEIGHTS_KEYS = (
    "sha256", "weights_url", "test_bits_per_dim", "test_nats_per_image",
    "training", "training_command", "samples",
)


def card_files(name, model, config, extra):
    preset = zoo.Preset(name, ROOT / "zoo" / name, model, config, {})
    metadata = {
        "name": name,
        "model": model,
        "image_shape": config["image_shape"],
        "num_levels": config["num_levels"],
        "num_params": zoo.count_params(preset),
        **extra,
    }
    old_path = ROOT / "zoo" / name / zoo.METADATA_FILE
    if old_path.is_file():
        old = json.loads(old_path.read_text())
        metadata.update({k: old[k] for k in WEIGHTS_KEYS if k in old})
    if "training_command" not in metadata and not name.startswith("test_"):
        metadata["suggested_training_command"] = (
            f"pixel-keras train --preset {name} --dataset {extra['dataset']}"
        )
    return {
        zoo.CONFIG_FILE: json.dumps({"model": model, "config": config}, indent=2, sort_keys=True) + "\n",
        zoo.METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True) + "\n",
        zoo.CARD_FILE: zoo.model_card(name, metadata),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    for name, (model, config, extra) in PRESETS.items():
        directory = ROOT / "zoo" / name
        for filename, text in card_files(name, model, config, extra).items():
            path = directory / filename
            if path.is_file() and path.read_text() == text:
                continue
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("Out of date:", *stale, sep="\n  ")
        return 1
    print(f"{len(PRESETS)} presets; {'stale' if args.check else 'written'}: {len(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
