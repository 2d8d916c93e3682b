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

RUN_DIR may also be the output of `tools/train_gpu_jax.py` (an accelerator
run with the JAX backend: `result.json`, `config.json`, `model.weights.h5`);
its weights are evaluated here all the same (TensorFlow on this CPU, as
`pixel-keras evaluate` does), and its record (device, steps, images/s, the
accelerator's own bits/dim) goes into the metadata. `--receptive-field FILE`
takes a measurement made elsewhere (the JSON of
`testing.receptive_field`, e.g. on the accelerator) instead of measuring
here, which takes long on a CPU for a large model.
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
from pixel_keras.idx import FASHION_MNIST_SIZES  # noqa: E402
from pixel_keras.images import save_image_grid  # noqa: E402
from pixel_keras.models import registry  # noqa: E402

# The recipe facts a card records, named alike in `pixel-keras train`'s
# config.json and in the "recipe" of `tools/train_gpu_jax.py`'s result.json.
RECIPE_KEYS = (
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "warmup_steps",
    "clipnorm",
    "ema_momentum",
    "output_bias",
    "precision",
    "train_split",
)


def _recipe(source):
    """The card's recipe facts read from one run's recipe (missing: None)."""
    return {key: source.get(key) for key in RECIPE_KEYS}


def _images_seen(state, run_config):
    """Training images drawn: epochs x steps x batch (None if unknown)."""
    epochs = state.get("epoch") if state else None
    steps, batch = run_config.get("steps_per_epoch"), run_config.get("batch_size")
    if epochs is None or steps is None or batch is None:
        return None
    return int(epochs) * int(steps) * int(batch)


def _load_run(run_dir, hardware):
    """`(model, training record, ema momentum)` of a run to publish."""
    result_path = Path(run_dir) / "result.json"
    if result_path.is_file():  # tools/train_gpu_jax.py
        result = json.loads(result_path.read_text())
        config = json.loads((Path(run_dir) / "config.json").read_text())
        model = registry.create(config["model"], **config["config"])
        model.load_weights(str(Path(run_dir) / "model.weights.h5"))
        recipe = result["recipe"]
        # A resumed run (a leg of a `pixel-keras train` run) counts from the
        # checkpoint's step; its batch size is the leg's.
        steps = result.get("start_step", 0) + result["train_steps"]
        record = {
            **_recipe(recipe),
            "epochs": round(
                steps * recipe["batch_size"] / FASHION_MNIST_SIZES["train"], 2
            ),
            "steps": steps,
            "train_images_seen": steps * recipe["batch_size"],
            "optimizer": recipe["optimizer"],
            "hardware": hardware
            or f"one {result['device']} ({result['platform']}, JAX {result['jax_version']})",
            "backend": result["backend"],
            "keras_version": result["keras_version"],
            "wall_time_s": result["train_seconds"],
            "compile_seconds": result["compile_seconds"],
            "images_per_second": result["images_per_second"],
            "accelerator_test_bits_per_dim": result["test_bits_per_dim"],
        }
        return model, record, recipe["ema_momentum"]
    model = training.load_checkpoint(run_dir)  # the weight average, if kept
    state = training.read_state(run_dir)
    run_config = training.read_config(run_dir) or {}
    record = {
        **_recipe(run_config),
        "epochs": state.get("epoch") if state else None,
        "steps_per_epoch": run_config.get("steps_per_epoch"),
        "train_images_seen": _images_seen(state, run_config),
        "optimizer": "Adam",
        "hardware": hardware or f"{os.cpu_count()} CPU cores ({platform.machine()})",
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "wall_time_s": state.get("elapsed_seconds") if state else None,
    }
    return model, record, record["ema_momentum"]


def _write_config(preset, model):
    """Replaces `zoo/PRESET/config.json`'s architecture with `model`'s."""
    text = json.dumps(zoo.preset_config(model), indent=2, sort_keys=True)
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
    parser.add_argument(
        "--hardware",
        help="what trained it (default: this machine's CPU cores, or the accelerator a JAX run names)",
    )
    parser.add_argument(
        "--receptive-field",
        metavar="FILE",
        help="JSON of a `testing.receptive_field` measurement made elsewhere (default: measure here)",
    )
    args = parser.parse_args()

    preset = zoo.get_preset(args.preset)
    model, record, ema = _load_run(args.run_dir, args.hardware)
    if args.update_config:
        _write_config(preset, model)
        preset = zoo.get_preset(args.preset)
    reference = zoo.build(preset)
    if (
        model.count_params() != reference.count_params()
        or zoo.model_name(model) != preset.model
    ):
        raise SystemExit(
            f"{args.run_dir} does not hold the architecture of preset {args.preset} "
            "(pass --update-config to replace the preset's architecture)"
        )
    dataset = preset.metadata["dataset"]
    result = training.evaluate(model, dataset, "test")

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
        conditions = {"class_label": 0}
    else:
        samples = model.sample(64, seed=0, verbose=0)
        columns = 8
        conditions = ()
    if args.receptive_field:
        field = json.loads(Path(args.receptive_field).read_text())
    else:
        field = testing.receptive_field(model, conditions=conditions, num_images=8)
    save_image_grid(
        samples,
        str(preset.path / "samples.png"),
        num_levels=preset.config["num_levels"],
        columns=columns,
        scale=4,
    )

    metadata = json.loads((preset.path / zoo.METADATA_FILE).read_text())
    metadata.pop("suggested_training_command", None)
    metadata.pop("training_legs", None)
    metadata.update(
        sha256=zoo.sha256(weights),
        test_bits_per_dim=round(float(result["bits_per_dim"]), 4),
        test_nats_per_image=round(float(result["nats_per_image"]), 3),
        training_command=args.command[0],
        receptive_field=field,
        weights_average=(
            f"the published weights are the moving average of the trained weights "
            f"(momentum {ema}, warmed up: min({ema}, (1 + t) / (10 + t)) at step t; "
            "the training command's `--ema`)"
            if ema
            else None
        ),
        training={
            **{key: value for key, value in record.items() if value is not None},
            "test_split": "test (full)",
            "test_images": result["num_images"],
        },
        samples="samples.png" + (" (one column per class)" if labels else ""),
    )
    if len(args.command) > 1:
        metadata["training_legs"] = args.command
    metadata = {k: v for k, v in metadata.items() if v is not None}
    (preset.path / zoo.METADATA_FILE).write_text(
        json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    )
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_presets.py")], check=True
    )
    print(json.dumps({"preset": args.preset, **result}, default=float))


if __name__ == "__main__":
    main()
