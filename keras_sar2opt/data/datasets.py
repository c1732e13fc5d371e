"""Which dataset a number was measured on: the synthetic benchmark or a folder of real data."""

import json
from pathlib import Path

SYNTHETIC_MARKER = "synthetic.json"  # written by keras_sar2opt.data.synthetic.write_synthetic


def find_synthetic(path):
    """The settings in the synthetic.json of `path` or of one of its two parent folders, or None."""
    path = Path(path).resolve()
    for folder in (path, *list(path.parents)[:2]):
        marker = folder / SYNTHETIC_MARKER
        if marker.is_file():
            try:
                info = json.loads(marker.read_text())
            except ValueError:
                return None
            if info.get("synthetic"):
                return info
    return None


def describe_dataset(path, synthetic=None):
    """{"path", "synthetic", "label"} for a dataset folder; `synthetic` is a synthetic.json dict or
    a run's {"preset", "pairs", "size", "seed"} (looked up beside `path` when None)."""
    path = Path(path).resolve() if path is not None else None
    if synthetic is None and path is not None:
        synthetic = find_synthetic(path)
    if synthetic:
        preset = synthetic.get("preset")
        name = preset.get("name") if isinstance(preset, dict) else preset
        pairs, size, seed = (synthetic.get(key) for key in ("pairs", "size", "seed"))
        label = f"synthetic `{name}` preset ({pairs} pairs, {size} px, seed {seed})"
        synthetic = {"preset": name, **{key: synthetic.get(key) for key in ("pairs", "size", "seed")}}
    else:
        label = f"data at `{path}`" if path is not None else "unknown data (not recorded)"
        synthetic = None
    return {"path": str(path) if path is not None else None, "synthetic": synthetic, "label": label}
