"""Torch-free reading of PyTorch checkpoints (report §3): `torch.save` zip and legacy files, `.safetensors`.

A checkpoint is a pickle; unpickling runs whatever globals it names. The unpickler here resolves only
the handful of globals a state_dict or a training checkpoint needs (tensor rebuild, storage types,
dtypes, OrderedDict, plain containers, NumPy number scalars and their dtypes) to local NumPy
implementations and refuses everything else, so no code from the file runs.
"""

import builtins
import collections
import io
import logging
import os
import pickle
import struct
import zipfile

import numpy as np

from keras_sar2opt.errors import Sar2OptError

logger = logging.getLogger(__name__)

# Keys under which training scripts commonly wrap a state_dict, tried in this order.
STATE_DICT_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "generator",
    "gen",
    "netG",
    "G",
    "generator_state_dict",
    "gen_state_dict",
    "discriminator",
    "disc",
    "netD",
    "D",
    "discriminator_state_dict",
    "disc_state_dict",
)
# Keys under which training scripts keep an exponential moving average of the weights beside the model;
# never chosen by themselves (`key=` chooses one).
EMA_KEYS = ("ema", "model_ema", "ema_state_dict", "state_dict_ema")

# NumPy dtype (little-endian base) of each torch storage/dtype name; "bfloat16" has no NumPy type
# and is widened to float32 when the tensor is built.
_DTYPES = {
    "float64": "f8",
    "float32": "f4",
    "float16": "f2",
    "bfloat16": "u2",
    "int64": "i8",
    "int32": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
}
_STORAGE_TYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Bytes a zip checkpoint may unpack to, per byte of file (plus a floor): torch.save stores members
# uncompressed, so only a zip bomb declares much more.
_MAX_EXPANSION = 16
_MIN_UNPACKED_LIMIT = 1 << 26
_SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes")
}


class _CorruptError(Exception):
    """Raised while decoding; turned into a Sar2OptError naming the file."""


class _DType(str):
    """A torch dtype or storage type named in the pickle, by its dtype name."""


class _NumpyDType:
    """A NumPy dtype named in the pickle (`numpy.dtype(code, align, copy)`, then its state): numbers only."""

    def __init__(self, code, align=False, copy=False):
        dtype = np.dtype(code) if isinstance(code, str) and code.isalnum() else None
        if dtype is None or dtype.kind not in "biufc":
            raise _CorruptError(f"a NumPy dtype {code!r:.40} is not a number type")
        self.dtype = dtype

    def __setstate__(self, state):
        """Only the byte order is taken from NumPy's dtype state (version, byteorder, ...)."""
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype, data=None):
    """A NumPy number scalar from its dtype and raw bytes (`numpy.core.multiarray.scalar`)."""
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise _CorruptError("a NumPy scalar does not hold a number of its dtype")
    return np.frombuffer(data, dtype.dtype)[0]


def _latin1_bytes(text, encoding):
    """Bytes pickled by protocol 2 as `_codecs.encode(text, "latin1")`; no other codec is run."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _CorruptError(f"a pickled bytes object uses the codec {encoding!r:.40}")
    return text.encode("latin1")


class _Storage:
    """A storage named by a persistent id; its bytes arrive later (zip member or legacy stream)."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None

    def array(self, dtype):
        itemsize = np.dtype(_DTYPES[dtype]).itemsize
        if self.data is None or len(self.data) < self.numel * np.dtype(_DTYPES[self.dtype]).itemsize:
            raise _CorruptError("a tensor storage is shorter than its header says")
        return np.frombuffer(self.data, dtype=_DTYPES[dtype], count=len(self.data) // itemsize)


class _Tensor:
    """A tensor whose storage bytes may not have been read yet."""

    def __init__(self, storage, offset, size, stride, dtype):
        if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
            raise _CorruptError("a tensor has malformed size/stride")
        if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
            raise _CorruptError("a tensor has a negative size, stride or offset")
        self.storage, self.offset, self.size, self.stride, self.dtype = storage, offset, size, stride, dtype

    def numpy(self, byteorder):
        flat = self.storage.array(self.dtype)
        if byteorder == "big":
            flat = flat.byteswap()
        if 0 in self.size:
            values = np.zeros(self.size, flat.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if last >= flat.size:
                raise _CorruptError("a tensor view reaches past the end of its storage")
            strides = tuple(s * flat.itemsize for s in self.stride)
            values = np.lib.stride_tricks.as_strided(flat[self.offset :], self.size, strides).copy()
        if self.dtype == "bfloat16":
            return (values.astype(np.uint32) << 16).view(np.float32)
        return values


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise _CorruptError("a tensor is not backed by a storage")
    return _Tensor(storage, storage_offset, size, stride, storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
        raise _CorruptError("a tensor is not backed by a storage")
    return _Tensor(storage, storage_offset, size, stride, str(dtype))


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_TORCH_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # A training checkpoint's NumPy numbers (a loss, a best metric) and dtypes, as NumPy 1 and 2 pickle them.
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("_codecs", "encode"): _latin1_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state_dict needs; storages come from `open_storage(pid)`."""

    def __init__(self, file, path, open_storage):
        super().__init__(file)
        self._path = path
        self._open_storage = open_storage

    def find_class(self, module, name):
        if (module, name) in _TORCH_FUNCTIONS:
            return _TORCH_FUNCTIONS[(module, name)]
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module in ("torch", "torch.storage") and name in _STORAGE_TYPES:
            return _DType(_STORAGE_TYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DType(name)
        raise Sar2OptError(
            f"Refusing to load {self._path}: it asks for the global {module}.{name}, which a state_dict "
            "never needs (only tensors, OrderedDict, plain containers, numbers and NumPy numbers are allowed)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _DType)):
            raise _CorruptError(f"unexpected persistent id {pid!r:.80}")
        return self._open_storage(pid)


def _materialize(obj, byteorder):
    """Replace every pending tensor in a nest of containers by its NumPy array."""
    if isinstance(obj, _Tensor):
        return obj.numpy(byteorder)
    if isinstance(obj, _NumpyDType):
        return obj.dtype
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialize(value, byteorder)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(value, byteorder) for value in obj)
    return obj


def _load_zip(path, archive):
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise _CorruptError("the zip archive has no single <name>/data.pkl, so it is not a torch.save file")
    prefix = pickles[0][: -len("data.pkl")]
    names = set(archive.namelist())
    budget = _MAX_EXPANSION * os.path.getsize(path) + _MIN_UNPACKED_LIMIT

    def read(member):
        """A member's bytes, refused when the members read so far declare more than the budget."""
        nonlocal budget
        budget -= archive.getinfo(member).file_size
        if budget < 0:
            raise _CorruptError(f"{member} unpacks to far more bytes than the file holds (a zip bomb?)")
        return archive.read(member)

    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = read(prefix + "byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            raise _CorruptError(f"unknown byteorder {byteorder!r}")
    storages = {}

    def open_storage(pid):
        _, dtype, key, _location, numel = pid[:5]
        if key not in storages:
            member = f"{prefix}data/{key}"
            if member not in names:
                raise _CorruptError(f"storage {member} is missing from the archive")
            storages[key] = _Storage(str(dtype), numel)
            storages[key].data = read(member)
        return storages[key]

    obj = _RestrictedUnpickler(io.BytesIO(read(pickles[0])), path, open_storage).load()
    return _materialize(obj, byteorder)


def _load_legacy(path, stream):
    """The pre-1.6 format: magic, protocol, sys_info, the object, its storage keys, raw storages."""

    def refuse_storage(pid):
        raise _CorruptError("a storage appears before the main object")

    header = [_RestrictedUnpickler(stream, path, refuse_storage).load() for _ in range(3)]
    if header[0] != _LEGACY_MAGIC:
        raise _CorruptError("no torch.save magic number")
    roots, views = {}, []

    def open_storage(pid):
        _, dtype, key, _location, numel = pid[:5]
        roots.setdefault(key, _Storage(str(dtype), numel))
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return roots[key]
        storage = _Storage(str(dtype), view[2])
        views.append((storage, key, view[1]))
        return storage

    obj = _RestrictedUnpickler(stream, path, open_storage).load()
    keys = _RestrictedUnpickler(stream, path, refuse_storage).load()
    for key in keys:
        if key not in roots:
            raise _CorruptError(f"storage {key} is listed but never used")
        (numel,) = struct.unpack("<q", stream.read(8))
        storage = roots[key]
        nbytes = numel * np.dtype(_DTYPES[storage.dtype]).itemsize
        storage.data = stream.read(nbytes)
        if len(storage.data) != nbytes:
            raise _CorruptError("the file ends inside a tensor storage")
    for storage, key, offset in views:
        itemsize = np.dtype(_DTYPES[storage.dtype]).itemsize
        storage.data = roots[key].data[offset * itemsize : (offset + storage.numel) * itemsize]
    # Legacy storages are always written little-endian, whatever the writer's byte order.
    return _materialize(obj, "little")


def _load_safetensors(path):
    import safetensors

    with open(path, "rb") as stream:
        views = safetensors.deserialize(stream.read())
    out = {}
    for key, view in views:
        dtype = _SAFETENSORS_DTYPES.get(view["dtype"])
        if dtype is None:
            raise Sar2OptError(f"Expected a float or integer tensor in {path}, received {key} of dtype {view['dtype']}")
        storage = _Storage(dtype, int(np.prod(view["shape"], dtype=np.int64)))
        storage.data = bytes(view["data"])
        shape = tuple(view["shape"])
        stride = tuple(int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(len(shape)))
        out[key] = _Tensor(storage, 0, shape, stride, dtype).numpy("little")
    return out


def read_checkpoint(path):
    """Read a `.pth`/`.pt`/`.ckpt` (zip or legacy torch.save) or `.safetensors` file into NumPy.

    Returns the pickled object with every tensor replaced by an `np.ndarray` (bfloat16 becomes float32).
    Raises Sar2OptError for a missing, truncated, corrupt or code-carrying file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise Sar2OptError(f"Expected a checkpoint file, received a missing path: {path}")
    try:
        if path.lower().endswith(".safetensors"):
            return _load_safetensors(path)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _load_zip(path, archive)
        with open(path, "rb") as stream:
            head = stream.read(2)
            if head[:2] == b"PK":
                raise _CorruptError("a zip archive without its central directory")
            if not head or head[0] != 0x80:
                raise _CorruptError("neither a torch.save zip archive nor a legacy pickle")
            stream.seek(0)
            # From memory: a declared length past the end then reads what is there, allocating no more.
            return _load_legacy(path, io.BytesIO(stream.read()))
    except Sar2OptError:
        raise
    except Exception as error:  # anything else raised while decoding means a damaged file
        reason = str(error) if isinstance(error, _CorruptError) else f"{type(error).__name__}: {error}"
        raise Sar2OptError(
            f"Expected a complete PyTorch checkpoint, received a truncated or corrupt file: {path} ({reason})"
        ) from None


def _is_state_dict(obj):
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    )


def read_state_dict(path, key=None):
    """Read a state_dict (`dict[str, np.ndarray]`) from a bare or wrapped checkpoint.

    A wrapped checkpoint (a training checkpoint with its epoch, optimizer state and loss) holds the
    state_dict under one of STATE_DICT_KEYS, or under `key` when given (`--weights-key`, e.g. one
    of EMA_KEYS for the moving average kept beside the model).
    """
    obj = read_checkpoint(path)
    if key is not None:
        if not (isinstance(obj, dict) and _is_state_dict(obj.get(key))):
            found = sorted(k for k in obj if isinstance(k, str)) if isinstance(obj, dict) else type(obj).__name__
            raise Sar2OptError(f"Expected a state_dict under key {key!r} (--weights-key) in {path}, received {found}")
        return dict(obj[key])
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        found = [k for k in STATE_DICT_KEYS if _is_state_dict(obj.get(k))]
        if len(found) == 1:
            averages = [k for k in EMA_KEYS if _is_state_dict(obj.get(k))]
            if averages:
                logger.warning(
                    f"{path} holds weights under {found[0]!r} and moving averages under {averages[0]!r}; "
                    f"using {found[0]!r} (--weights-key {averages[0]} uses the averages)"
                )
            return dict(obj[found[0]])
        if len(found) > 1:
            raise Sar2OptError(
                f"Expected one state_dict in {path}, received several under keys {found}; choose one with "
                f"--weights-key KEY"
            )
        keys = [k for k in obj if isinstance(k, str)][:10]
        raise Sar2OptError(
            f"Expected a state_dict (name -> tensor) or one wrapped under one of {list(STATE_DICT_KEYS)} "
            f"in {path} (another key: --weights-key), received a dict with keys {keys}"
        )
    raise Sar2OptError(f"Expected a state_dict in {path}, received a pickled {type(obj).__name__}")
