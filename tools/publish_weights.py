"""Publishes a finished training run as a preset's weights.

    python tools/publish_weights.py RUN_DIR PRESET --command "pixel-keras train ..."
    python tools/publish_weights.py RUN_DIR PRESET --command LEG1 --command LEG2 \
        --update-config

Loads the run's latest checkpoint (its weight average, if the run kept one),
evaluates it on the preset data set's full test split, measures its receptive
field (`pixel_keras.testing.receptive_field`), writes
`zoo/PRESET/model.weights.h5` and `samples.png` (an 8 x 8 grid; a
class-conditional preset gets one column per class, 8 rows), records bits/dim,
nats/image, the training recipe, every leg's command and the sha256 in
`zoo/PRESET/metadata.json`, and regenerates the card
(`tools/make_presets.py`). The architecture must equal the preset's, unless
`--update-config` is given: then the run's architecture replaces the one in
`zoo/PRESET/config.json` (for a preset re-sized and retrained).
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

from pixel_keras import testing, training, zoo  # noqa: E402
from pixel_keras.images import save_image_grid  # noqa: E402


def _images_seen(state, run_config):
    """Training images drawn: epochs x steps x batch (None if unknown)."""
    epochs = state.get("epoch") if state else None
    steps, batch = run_config.get("steps_per_epoch"), run_config.get("batch_size")
    if epochs is None or steps is None or batch is None:
        return None
    return int(epochs) * int(steps) * int(batch)


def _write_config(preset, model):
    """Replaces `zoo/PRESET/config.json`'s architecture with `model`'s."""
    config = {
        k: v
        for k, v in model.get_config().items()
        if k not in ("name", "trainable") and v is not None
    }
    config["image_shape"] = list(config["image_shape"])
    text = json.dumps({"model": zoo.model_name(model), "config": config}, indent=2, sort_keys=True)
    (preset.path / zoo.CONFIG_FILE).write_text(text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("preset")
    parser.add_argument(
        "--command",
        required=True,
        action="append",
        help="the exact training command; repeat it for each leg of a run trained in legs",
    )
    parser.add_argument(
        "--update-config",
        action="store_true",
        help="write the run's architecture into zoo/PRESET/config.json first",
    )
    parser.add_argument("--hardware", default=f"{os.cpu_count()} CPU cores ({platform.machine()})")
    args = parser.parse_args()

    preset = zoo.get_preset(args.preset)
    model = training.load_checkpoint(args.run_dir)  # the weight average, if kept
    if args.update_config:
        _write_config(preset, model)
        preset = zoo.get_preset(args.preset)
    reference = zoo.build(preset)
    if model.count_params() != reference.count_params() or zoo.model_name(model) != preset.model:
        raise SystemExit(
            f"{args.run_dir} does not hold the architecture of preset {args.preset} "
            "(pass --update-config to replace the preset's architecture)"
        )
    dataset = preset.metadata["dataset"]
    result = training.evaluate(model, dataset, "test")
    state = training.read_state(args.run_dir)
    run_config = training.read_config(args.run_dir) or {}

    weights = preset.path / zoo.WEIGHTS_FILE
    # A fresh model without the checkpoint's optimizer: Keras writes a
    # compiled model's optimizer variables (Adam moments, the weight average)
    # into .weights.h5 too, 4x the size, and a preset ships the weights only.
    published = zoo.build(preset)
    published.set_weights(model.get_weights())
    published.save_weights(str(weights))
    labels = None
    num_classes = preset.config.get("num_classes")
    if num_classes:
        labels = [i % num_classes for i in range(8 * num_classes)]
        samples = model.sample(len(labels), seed=0, class_label=labels, verbose=0)
        columns = num_classes
        field = testing.receptive_field(model, conditions={"class_label": 0}, num_images=8)
    else:
        samples = model.sample(64, seed=0, verbose=0)
        columns = 8
        field = testing.receptive_field(model, num_images=8)
    save_image_grid(
        samples, str(preset.path / "samples.png"), num_levels=preset.config["num_levels"],
        columns=columns, scale=4,
    )

    metadata = json.loads((preset.path / zoo.METADATA_FILE).read_text())
    metadata.pop("suggested_training_command", None)
    metadata.pop("training_legs", None)
    ema = run_config.get("ema_momentum")
    metadata.update(
        sha256=zoo.sha256(weights),
        test_bits_per_dim=round(float(result["bits_per_dim"]), 4),
        test_nats_per_image=round(float(result["nats_per_image"]), 3),
        training_command=args.command[0],
        receptive_field=field,
        weights_average=(
            f"the published weights are the moving average of the trained weights "
            f"(momentum {ema}, warmed up: min({ema}, (1 + t) / (10 + t)) at step t; "
            "`pixel-keras train --ema`)"
            if ema
            else None
        ),
        training={
            "epochs": state.get("epoch") if state else None,
            "batch_size": run_config.get("batch_size"),
            "learning_rate": run_config.get("learning_rate"),
            "lr_schedule": run_config.get("lr_schedule"),
            "warmup_steps": run_config.get("warmup_steps"),
            "clipnorm": run_config.get("clipnorm"),
            "ema_momentum": ema,
            "precision": run_config.get("precision"),
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
    if len(args.command) > 1:
        metadata["training_legs"] = args.command
    metadata = {k: v for k, v in metadata.items() if v is not None}
    (preset.path / zoo.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_presets.py")], check=True)
    print(json.dumps({"preset": args.preset, **result}, default=float))


if __name__ == "__main__":
    main()
