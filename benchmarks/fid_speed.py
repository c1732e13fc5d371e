"""FID features per second: the Keras FID Inception network beside pytorch-fid's, in one run (docs/metrics.md).

    python -m benchmarks.fid_speed [--images 1000] [--size 256] [--batch-size 50]

Both read the same random weights in pytorch-fid's layout (written by the reference side,
tests/metrics_reference.py, in the reference environment of `make reference-env`) and the same uint8
images, divided by 255 batch by batch. Each side runs one warm-up batch first, then is timed over all
images; PyTorch uses as many threads as there are cores. Prints a table, the ratio and the largest
feature difference.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PYTHON = Path(os.environ.get("SAR2OPT_REFERENCE_PYTHON", ROOT / ".venv-reference" / "bin" / "python"))


def keras_features(images, weights, batch_size):
    """(features, seconds) of the Keras network after one warm-up batch."""
    from keras_sar2opt.metrics import fid_features
    from keras_sar2opt.metrics.inception import load_fid_inception

    model = load_fid_inception(weights, progress=False)

    def run(batch):
        return fid_features(batch.astype(np.float32) / 255.0, model=model, batch_size=batch_size)

    run(images[:batch_size])
    start = time.perf_counter()
    features = np.concatenate([run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return features, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)
    if not REFERENCE_PYTHON.is_file():
        raise SystemExit(f"no reference environment at {REFERENCE_PYTHON}: run make reference-env")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (args.images, 16, 16, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, -(-args.size // 16), axis=1), -(-args.size // 16), axis=2)
    images = images[:, : args.size, : args.size]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "images.npy", images)
        (folder / "job.json").write_text(json.dumps({"fid_images": ["images"], "batch_size": args.batch_size}))
        env = {**os.environ, "REFERENCE_THREADS": str(os.cpu_count())}
        command = [str(REFERENCE_PYTHON), str(ROOT / "tests" / "metrics_reference.py"), str(folder)]
        subprocess.run(command, check=True, env=env)
        reference = json.loads((folder / "results.json").read_text())
        torch_seconds = reference["seconds"]["images"]
        torch_features = np.load(folder / "reference_features_images.npy")
        features, keras_seconds = keras_features(images, reference["weights"]["fid_inception"], args.batch_size)
    print(
        f"FID features of {args.images} images of {args.size}x{args.size} "
        f"(batch {args.batch_size}, {os.cpu_count()} cores)"
    )
    print("| implementation | seconds | images/s |")
    print("|---|---|---|")
    for name, seconds in (
        ("Keras (keras_sar2opt.metrics.fid_features)", keras_seconds),
        ("pytorch-fid", torch_seconds),
    ):
        print(f"| {name} | {seconds:.1f} | {args.images / seconds:.1f} |")
    print(f"Keras / pytorch-fid throughput: {torch_seconds / keras_seconds:.2f}x")
    print(f"largest feature difference: {np.abs(features - torch_features).max():.2e}")


if __name__ == "__main__":
    main()
