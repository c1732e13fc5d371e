"""The pretrained networks behind FID, KID, LPIPS and DISTS: where each file comes from, its cache, its checks.

Each file is the reference implementation's own (docs/metrics.md lists them), downloaded on first use
from its canonical URL into `$KERAS_HOME/keras_sar2opt/metrics` (or a `weights_dir`), checked against
its SHA-256, and read without PyTorch. Nothing is downloaded at import time.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np

from keras_sar2opt import downloads, files
from keras_sar2opt.errors import Sar2OptError


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One published weights file.

    sha256: the full hash, where the file could be hashed (it ships inside the reference package);
    sha256_prefix: the hash prefix that the upstream file name carries (torch.hub's check), where only
    that is published.
    """

    key: str
    network: str
    file: str
    url: str
    source: str
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def expected_hash(self):
        return self.sha256 or f"{self.sha256_prefix}…"

    def check(self, path, digest):
        """A Sar2OptError naming `path` unless `digest` (its SHA-256) is the published one."""
        published = digest == self.sha256 if self.sha256 else digest.startswith(self.sha256_prefix)
        if not published:
            raise Sar2OptError(
                f"Expected {path} to have SHA-256 {self.expected_hash} ({self.url}), received {digest}; "
                "delete it to download it again"
            )


WEIGHTS = {
    weights.key: weights
    for weights in (
        WeightsFile(
            "fid_inception",
            "FID Inception (the 2015 TensorFlow graph)",
            "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "pytorch-fid's port of TensorFlow's inception-2015-12-05 graph",
            sha256_prefix="6726825d",
        ),
        WeightsFile(
            "alexnet",
            "AlexNet (LPIPS backbone)",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "torchvision's ImageNet AlexNet, which lpips.LPIPS(net='alex') loads",
            sha256_prefix="7be5be79",
        ),
        WeightsFile(
            "lpips_alex",
            "LPIPS v0.1 linear heads (AlexNet)",
            "lpips-v0.1-alex.pth",
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
            "the lpips package's weights/v0.1/alex.pth",
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        ),
        WeightsFile(
            "vgg16",
            "VGG16 (DISTS backbone)",
            "vgg16-397923af.pth",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            "torchvision's ImageNet VGG16, which DISTS_pytorch.DISTS() loads",
            sha256_prefix="397923af",
        ),
        WeightsFile(
            "dists",
            "DISTS alpha/beta weights",
            "dists-weights.pt",
            "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
            "the DISTS_pytorch package's weights.pt",
            sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
        ),
    )
}


def weights_path(key, given=None, weights_dir=None, progress=True):
    """The file of weights `key`: `given` as it is (any file in the upstream layout, e.g. an offline copy or
    test weights; not hash-checked), else the cached file, downloaded on first use and hash-checked."""
    weights = WEIGHTS[key]
    if given is not None:
        if not Path(given).is_file():
            raise Sar2OptError(f"Expected the {weights.network} weights file ({weights.file}), received {given}")
        return Path(given)
    folder = downloads.cache_dir("metrics", weights_dir)
    path = folder / weights.file
    if path.is_file():
        weights.check(path, downloads.sha256_file(path))
        return path
    files.check_writable(folder, "--weights-dir" if weights_dir is not None else "metric weights cache", create=True)
    print(f"Downloading the {weights.network} weights ({weights.source}) from {weights.url} into {folder}")
    downloads.download(weights.url, path, sha256=weights.sha256, verify=weights.check, progress=progress)
    return path


def read_weights(key, given=None, weights_dir=None, progress=True):
    """(state_dict of NumPy arrays, its path) of weights `key`, as `weights_path` finds them."""
    from keras_sar2opt.convert.pth_reader import read_state_dict

    path = weights_path(key, given, weights_dir, progress)
    return read_state_dict(path), path


def check_layout(state, shapes, path, ignored=()):
    """Raise one Sar2OptError listing every key of `shapes` ({key: shape}) that `state` lacks or holds in
    another shape, and every key it has beyond them that no prefix or suffix in `ignored` explains."""
    missing = sorted(key for key in shapes if key not in state)
    misshaped = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(shape)})"
        for key, shape in shapes.items()
        if key in state and tuple(state[key].shape) != tuple(shape)
    ]
    unexpected = sorted(
        key for key in state if key not in shapes and not any(key.startswith(i) or key.endswith(i) for i in ignored)
    )
    problems = [
        f"{label}: {', '.join(items[:6])}{' …' if len(items) > 6 else ''}"
        for label, items in (("missing", missing), ("mis-shaped", misshaped), ("unexpected", unexpected))
        if items
    ]
    if problems:
        raise Sar2OptError(f"Expected the upstream layout in {path}, received {'; '.join(problems)}")


def conv_kernel(weight):
    """A PyTorch Conv2d weight (out, in, kh, kw) as a Keras kernel (kh, kw, in, out)."""
    return np.transpose(np.asarray(weight, np.float32), (2, 3, 1, 0))


def upstream_key(layer):
    """The upstream module path a layer is named after: "Mixed_5b__branch1x1" is Mixed_5b.branch1x1."""
    return layer.name.replace("__", ".")


def load_convolutions(model, state, path, ignored=()):
    """Set every Conv2D of `model` from the `.weight` and `.bias` of its upstream key in `state`, once
    `check_layout` finds them all (keys starting or ending with one of `ignored` may be left over)."""
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    shapes = {}
    for layer in convolutions:
        kh, kw, cin, cout = layer.kernel.shape
        shapes[f"{upstream_key(layer)}.weight"] = (cout, cin, kh, kw)
        shapes[f"{upstream_key(layer)}.bias"] = (cout,)
    check_layout(state, shapes, path, ignored)
    for layer in convolutions:
        key = upstream_key(layer)
        layer.set_weights([conv_kernel(state[f"{key}.weight"]), np.asarray(state[f"{key}.bias"], np.float32)])
