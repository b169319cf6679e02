"""Read PyTorch checkpoints (``.pth``/``.pt``) into NumPy without importing torch.

Two on-disk formats are supported, both produced by ``torch.save``:

* **legacy** (``_use_new_zipfile_serialization=False``, torch < 1.6 default): a
  plain sequence of pickles in one stream -- the magic number, the protocol
  version, a ``sys_info`` dict, then the pickled object itself (its tensors
  refer to storages through pickle *persistent ids*), then the list of storage
  keys, then for every key in that order the raw storage bytes, each prefixed
  by its element count as an 8-byte little-endian integer.
* **zip** (torch >= 1.6 default): a zip archive ``<name>/data.pkl`` holding the
  pickled object, and ``<name>/data/<key>`` holding each storage's raw bytes.

The pickle is read by a *restricted* :class:`pickle.Unpickler`: ``find_class``
resolves only ``collections.OrderedDict``, the tensor/parameter rebuild helpers
of ``torch._utils`` (replaced by local functions) and the ``torch.*Storage``
types (replaced by dtype descriptors).  Anything else -- in particular
arbitrary callables, the usual pickle code-execution vector -- raises
:class:`pickle.UnpicklingError`.  Tensors are rebuilt as NumPy arrays with the
right dtype, shape, stride and storage offset (strided views are copied into
C-contiguous arrays).

Public API: :func:`load_torch_file` (any object), :func:`load_state_dict`
(flat ``{name: ndarray}``, also for ``.safetensors`` files).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["load_torch_file", "load_state_dict", "TorchFormatError"]

#: Magic number written first by torch's legacy serializer (torch/serialization.py).
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
#: Protocol version written second by the legacy serializer.
LEGACY_PROTOCOL_VERSION = 1001


class TorchFormatError(ValueError):
    """Raised when a file is not a readable PyTorch checkpoint."""


def _bfloat16() -> np.dtype:
    import ml_dtypes  # shipped with jax

    return np.dtype(ml_dtypes.bfloat16)


# torch.<Name>Storage -> numpy dtype (a callable for dtypes needing ml_dtypes).
_STORAGE_DTYPES: dict[str, Any] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": _bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class found in the pickle."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        d = _STORAGE_DTYPES[self.name]
        return d() if callable(d) and not isinstance(d, type) else np.dtype(d)


@dataclass
class _Storage:
    """A storage referenced by a persistent id; ``data`` is filled in later."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None
    root: tuple["_Storage", int] | None = None  # legacy storage views: (root, offset)


@dataclass
class _LazyTensor:
    """Result of ``_rebuild_tensor_v2`` before the storage bytes are known."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    extra: dict = field(default_factory=dict)

    def materialize(self) -> np.ndarray:
        st = self.storage
        if st.data is None:
            raise TorchFormatError(f"storage {st.key!r} has no data in the file")
        size, stride, offset = tuple(self.size), tuple(self.stride), int(self.offset)
        if len(size) != len(stride):
            raise TorchFormatError(f"tensor size {size} and stride {stride} differ in rank")
        if any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise TorchFormatError(f"negative size/stride {size}/{stride}")
        if 0 in size:
            return np.zeros(size, dtype=st.data.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= st.data.size:
            raise TorchFormatError(
                f"tensor (offset {offset}, size {size}, stride {stride}) exceeds "
                f"storage {st.key!r} of {st.data.size} elements"
            )
        item = st.data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            st.data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
        )
        return np.array(view, order="C", copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor storage is not a persistent storage reference")
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals a torch state dict needs."""

    def __init__(self, file: BinaryIO, storage_loader):
        super().__init__(file)
        self._storages: dict[str, _Storage] = {}
        self._storage_loader = storage_loader  # key -> np.ndarray | None (legacy: later)

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only plain tensor state dicts "
            "(OrderedDict, torch tensors and storages) are allowed"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":  # legacy: source of a pickled nn.Module class -- ignored
            return pid[1] if len(pid) > 1 else None
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id kind {kind!r}")
        # legacy: (storage, type, key, location, numel, view_metadata)
        # zip:    (storage, type, key, location, numel)
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        view_metadata = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        dtype = storage_type.dtype
        st = self._storages.get(key)
        if st is None:
            st = _Storage(key, dtype, numel)
            self._storages[key] = st
            data = self._storage_loader(key, dtype, numel)
            if data is not None:
                st.data = data
        if view_metadata is not None:  # very old torch: a view into a root storage
            view_key, view_offset, view_size = view_metadata
            # data is sliced from the root once all storages have been read
            return _Storage(str(view_key), dtype, int(view_size), root=(st, int(view_offset)))
        return st


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        if obj.storage.root is not None and obj.storage.data is None:
            st, off = obj.storage.root
            if st.data is None:
                raise TorchFormatError(f"storage {st.key!r} has no data in the file")
            obj.storage.data = st.data[off : off + obj.storage.numel]
        return obj.materialize()
    if isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
        return out
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    if isinstance(obj, _Storage):
        raise TorchFormatError("bare storages (not wrapped in tensors) are not supported")
    return obj


def _check_byteorder(little: bool) -> None:
    if not little:
        raise TorchFormatError("big-endian checkpoints are not supported")


def _load_legacy(f: BinaryIO) -> Any:
    def plain_load():
        return _RestrictedUnpickler(f, lambda *a: None).load()

    try:
        magic = plain_load()
    except Exception as exc:  # noqa: BLE001 - any failure means "not this format"
        raise TorchFormatError(f"not a PyTorch checkpoint ({exc})") from exc
    if magic != LEGACY_MAGIC_NUMBER:
        raise TorchFormatError("not a PyTorch checkpoint (bad magic number)")
    protocol = plain_load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise TorchFormatError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = plain_load()
    if isinstance(sys_info, dict):
        _check_byteorder(bool(sys_info.get("little_endian", True)))
    unpickler = _RestrictedUnpickler(f, lambda *a: None)
    result = unpickler.load()
    keys = plain_load()
    if not isinstance(keys, (list, tuple)):
        raise TorchFormatError("corrupt legacy checkpoint: storage key list missing")
    storages = unpickler._storages
    for key in keys:
        key = str(key)
        if key not in storages:
            raise TorchFormatError(f"corrupt legacy checkpoint: unknown storage key {key!r}")
        st = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise TorchFormatError(f"truncated checkpoint: no header for storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * st.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise TorchFormatError(
                f"truncated checkpoint: storage {key!r} needs {nbytes} bytes, got {len(raw)}"
            )
        st.data = np.frombuffer(raw, dtype=st.dtype)
        st.numel = numel
    return _materialize(result)


def _load_zip(path_or_file) -> Any:
    with zipfile.ZipFile(path_or_file) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise TorchFormatError(f"zip checkpoint without a single <name>/data.pkl ({len(pkl)} found)")
        prefix = pkl[0][: -len("data.pkl")]
        if prefix + "byteorder" in names:
            _check_byteorder(zf.read(prefix + "byteorder").decode().strip() == "little")

        def loader(key, dtype, numel):
            member = f"{prefix}data/{key}"
            try:
                raw = zf.read(member)
            except KeyError as exc:
                raise TorchFormatError(f"zip checkpoint lacks storage {member}") from exc
            if len(raw) < numel * dtype.itemsize:
                raise TorchFormatError(f"storage {member} is truncated")
            return np.frombuffer(raw[: numel * dtype.itemsize], dtype=dtype)

        unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), loader)
        return _materialize(unpickler.load())


def load_torch_file(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file (legacy or zip format) without torch.

    Tensors become NumPy arrays (C-contiguous copies); containers (dict,
    OrderedDict, list, tuple) and plain Python values are kept.  Raises
    :class:`TorchFormatError` for files in neither format and
    :class:`pickle.UnpicklingError` for pickles referencing anything other
    than tensors and OrderedDicts.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f)


def _flatten(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, np.ndarray):
            out[name] = v
        elif isinstance(v, dict):
            out.update(_flatten(v, name + "."))
    return out


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return ``{parameter name: ndarray}`` from a ``.pth``/``.pt``/``.safetensors`` file.

    ``.pth``/``.pt`` files are read by :func:`load_torch_file` (legacy or zip
    format); a checkpoint wrapping the weights as ``{"state_dict": ...}`` or
    ``{"model": ...}`` is unwrapped.  ``.safetensors`` files are read with
    ``safetensors.numpy``.  Insertion order of the file is kept.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    obj = load_torch_file(path)
    if not isinstance(obj, dict):
        raise TorchFormatError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    for wrapper in ("state_dict", "model"):
        if wrapper in obj and isinstance(obj[wrapper], dict) and not isinstance(obj[wrapper], np.ndarray):
            obj = obj[wrapper]
            break
    return _flatten(obj)
