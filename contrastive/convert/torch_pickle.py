"""PyTorch `torch.save` files (`.bin`, `.pt`: a zip of data.pkl plus one raw file per storage)
read as numpy without torch, through a restricted unpickler: only OrderedDict, torch's tensor
and parameter rebuild functions and its storage types are allowed, so a checkpoint cannot run
code (unlike plain `pickle.load` / `torch.load(weights_only=False)`)."""
import collections
import pickle
import zipfile

import numpy as np

_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
             "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
             "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
             "BoolStorage": np.bool_}


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *_):
    """A strided view of the flat storage, copied to a C-contiguous array."""
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride),
        writeable=False).copy()


def _rebuild_parameter(tensor, *_):
    return tensor


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _Storage(np.dtype(_STORAGES[name]))
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a torch checkpoint (only "
                                     "tensors, parameters and dicts are read)")

    def persistent_load(self, pid):
        kind, storage, key, _location, _numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        raw = self.archive.read(f"{self.prefix}data/{key}")
        return np.frombuffer(raw, storage.dtype)


def load_torch_pickle(path) -> dict[str, np.ndarray]:
    """{name: array} of a state dict saved with torch.save (the zip format, torch >= 1.6)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (legacy torch.save "
                         "files need torch)")
    with zipfile.ZipFile(path) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in archive.namelist() and archive.read(order).decode() != "little":
            raise ValueError(f"{path}: a big-endian checkpoint")
        with archive.open(pkl) as f:
            state = _Unpickler(f, archive, prefix).load()
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}
