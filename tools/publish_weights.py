"""Publishes a finished training run as a preset's weights.

    python tools/publish_weights.py RUN_DIR PRESET --command "pixel-keras train ..."

Loads the run's latest checkpoint, evaluates it on the preset data set's full
test split, writes `zoo/PRESET/model.weights.h5` and `samples.png`, records
bits/dim, nats/image, the training recipe and the sha256 in
`zoo/PRESET/metadata.json`, and regenerates the card
(`tools/make_presets.py`). The architecture must equal the preset's.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from pixel_keras import training, zoo  # noqa: E402
from pixel_keras.images import save_image_grid  # noqa: E402


def _images_seen(state, run_config):
    """Training images drawn: epochs x steps x batch (None if unknown)."""
    epochs = state.get("epoch") if state else None
    steps, batch = run_config.get("steps_per_epoch"), run_config.get("batch_size")
    if epochs is None or steps is None or batch is None:
        return None
    return int(epochs) * int(steps) * int(batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("preset")
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--hardware", default=f"{os.cpu_count()} CPU cores ({platform.machine()})")
    args = parser.parse_args()

    preset = zoo.get_preset(args.preset)
    model = training.load_checkpoint(args.run_dir)
    reference = zoo.build(preset)
    if model.count_params() != reference.count_params() or zoo.model_name(model) != preset.model:
        raise SystemExit(f"{args.run_dir} does not hold the architecture of preset {args.preset}")
    dataset = preset.metadata["dataset"]
    result = training.evaluate(model, dataset, "test")
    state = training.read_state(args.run_dir)
    run_config = training.read_config(args.run_dir) or {}

    weights = preset.path / zoo.WEIGHTS_FILE
    model.save_weights(str(weights))
    labels = None
    if preset.config.get("num_classes"):
        labels = [i % preset.config["num_classes"] for i in range(4 * preset.config["num_classes"])]
        samples = model.sample(len(labels), seed=0, class_label=labels, verbose=0)
        columns = preset.config["num_classes"]
    else:
        samples = model.sample(36, seed=0, verbose=0)
        columns = 6
    save_image_grid(
        samples, str(preset.path / "samples.png"), num_levels=preset.config["num_levels"],
        columns=columns, scale=4,
    )

    metadata = json.loads((preset.path / zoo.METADATA_FILE).read_text())
    metadata.pop("suggested_training_command", None)
    metadata.update(
        sha256=zoo.sha256(weights),
        test_bits_per_dim=round(float(result["bits_per_dim"]), 4),
        test_nats_per_image=round(float(result["nats_per_image"]), 3),
        training_command=args.command,
        training={
            "epochs": state.get("epoch") if state else None,
            "batch_size": run_config.get("batch_size"),
            "learning_rate": run_config.get("learning_rate"),
            "steps_per_epoch": run_config.get("steps_per_epoch"),
            "train_images_seen": _images_seen(state, run_config),
            "optimizer": "Adam",
            "train_split": run_config.get("train_split"),
            "test_split": "test (full)",
            "test_images": result["num_images"],
            "hardware": args.hardware,
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "wall_time_s": state.get("elapsed_seconds") if state else None,
        },
        samples="samples.png" + (" (one column per class)" if labels else ""),
    )
    (preset.path / zoo.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_presets.py")], check=True)
    print(json.dumps({"preset": args.preset, **result}, default=float))


if __name__ == "__main__":
    main()
