"""`pixel-keras zoo list|show`: the model presets."""

import json

from pixel_keras.cli._common import UsageError


def add_parser(commands):
    """Adds `zoo` (with `list` and `show`) to the subparsers `commands`."""
    p = commands.add_parser(
        "zoo",
        help="list and show model presets",
        description="The model zoo: named presets (architecture config, "
        "metadata, trained weights where they exist).",
    )
    sub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    sub.required = True
    listing = sub.add_parser(
        "list",
        help="one line per preset",
        description="One line per preset: name, model, data set, image shape, "
        "parameters, and 'weights' where trained weights exist ('-' if not).",
    )
    listing.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="glob on the name, e.g. '*digits'; without * ? [ a substring",
    )
    listing.set_defaults(handler=run_list)
    show = sub.add_parser(
        "show",
        help="config and metadata of one preset",
        description="The config and metadata of a preset (a name or a preset "
        "directory).",
    )
    show.add_argument("name", metavar="NAME", help="preset name or directory")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(handler=run_show)


def _rows(names):
    """One row of `zoo list` cells per preset name."""
    from pixel_keras import zoo

    rows = []
    for name in names:
        preset = zoo.get_preset(name)
        meta, config = preset.metadata, preset.config
        shape = meta.get("image_shape") or config.get("image_shape")
        params = meta.get("num_params")
        if params is None:
            params = zoo.count_params(preset)
        has_weights = preset.bundled_weights is not None or meta.get("weights_url")
        rows.append(
            (
                preset.name,
                preset.model,
                meta.get("dataset") or "-",
                "x".join(map(str, shape)) if shape else "-",
                f"{params:,}",
                "weights" if has_weights else "-",
            )
        )
    return rows


def run_list(args):
    """Runs `pixel-keras zoo list`; returns the exit status."""
    from pixel_keras import zoo

    pattern = args.pattern
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = zoo.list_presets(pattern)
    if not names:
        raise UsageError(
            f"no preset matches {args.pattern!r}. Available: {', '.join(zoo.list_presets())}"
        )
    header = ("NAME", "MODEL", "DATASET", "IMAGE", "PARAMS", "WEIGHTS")
    rows = [header, *_rows(names)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [
            cell.rjust(width) if i == 4 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  ".join(cells).rstrip())
    return 0


def run_show(args):
    """Runs `pixel-keras zoo show`; returns the exit status."""
    from pixel_keras import zoo

    info = zoo.describe(args.name)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"{info['name']}: {info['model']}")
    print(f"  weights: {info['weights'] or '-'}")
    for section in ("config", "metadata"):
        values = info[section]
        print(f"{section}:")
        if not values:
            print("  -")
        width = max((len(key) for key in values), default=0)
        for key in sorted(values):
            value = values[key]
            if isinstance(value, (list, dict)):
                value = json.dumps(value)
            print(f"  {key.ljust(width)}  {value}")
    return 0
