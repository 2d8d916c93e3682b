"""Derives the preset cards in zoo/ from each preset's config.json.

    python tools/make_presets.py            # rewrite the cards that are out of date
    python tools/make_presets.py --check    # exit 1 if a card is out of date

A preset's hyper-parameters live in one place: its `zoo/<name>/config.json`
(`{"model": <registry name>, "config": {<model arguments>}}`). Its
description (paper, data set, notes) and, where it has trained weights, their
record (bits/dim, training command, sha256, ...) live in its `metadata.json`.
This tool derives the rest: the metadata's name, model, image shape, levels
and parameter count (from config.json), a suggested training command, and
the `README.md` model card; config.json itself is only normalized (sorted
keys, 2-space indent). A new preset is a directory with a config.json and a
metadata.json holding at least "dataset" (and "paper", "notes" if wanted);
run this tool to complete it. A test checks that the checked-in cards are
this tool's output.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixel_keras import zoo  # noqa: E402

ZOO = ROOT / "zoo"


def _dumps(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def card_files(directory):
    """`{file name: text}` of a preset's config.json, metadata.json and README.md."""
    preset = zoo.get_preset(directory)
    name, config = preset.name, preset.config
    metadata = {
        **preset.metadata,
        "name": name,
        "model": preset.model,
        "image_shape": config["image_shape"],
        "num_levels": config["num_levels"],
        "num_params": zoo.count_params(preset),
    }
    metadata.pop("suggested_training_command", None)
    if "training_command" not in metadata and not name.startswith("test_"):
        metadata["suggested_training_command"] = (
            f"pixel-keras train --preset {name} --dataset {metadata['dataset']}"
        )
    return {
        zoo.CONFIG_FILE: _dumps({"model": preset.model, "config": config}),
        zoo.METADATA_FILE: _dumps(metadata),
        zoo.CARD_FILE: zoo.model_card(name, metadata),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check, write nothing"
    )
    args = parser.parse_args()
    directories = sorted(p.parent for p in ZOO.glob(f"*/{zoo.CONFIG_FILE}"))
    stale = []
    for directory in directories:
        for filename, text in card_files(directory).items():
            path = directory / filename
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("Out of date:", *stale, sep="\n  ")
        return 1
    print(
        f"{len(directories)} presets; {'stale' if args.check else 'written'}: "
        f"{len(stale)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
