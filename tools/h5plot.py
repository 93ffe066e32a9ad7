"""Shared pieces of xbar's plotting scripts (plot_trace.py, plot_validation.py): reading HDF5
attributes and datasets with one-line errors, opening a file, and writing a PNG atomically.
Debian's /usr/bin/python3 with python3-matplotlib, python3-h5py and python3-numpy."""
import os

import matplotlib
matplotlib.use("Agg")  # non-interactive: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import h5py  # noqa: E402


class FileError(Exception):
    """A problem with the input file; the scripts report it as one line and exit with code 2."""


def text(v):
    """Decode an HDF5 string attribute stored as bytes or str."""
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.item()
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8", "replace")
    return str(v)


def num(obj, name):
    """Numeric attribute as float, or NaN if absent (only used in titles)."""
    try:
        return float(np.asarray(obj.attrs[name]).item())
    except (KeyError, TypeError, ValueError):
        return float("nan")


def dataset(h5, path):
    """Read a whole dataset as a float array, or raise FileError."""
    obj = h5.get(path)
    if not isinstance(obj, h5py.Dataset):
        raise FileError(f"missing dataset {path}")
    try:
        return np.asarray(obj[()], dtype=float)
    except (TypeError, ValueError):
        raise FileError(f"dataset {path} is not numeric") from None


def open_hdf5(path):
    """Open an HDF5 file for reading, or raise FileError saying why not."""
    if not os.path.isfile(path):
        raise FileError("file not found")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise FileError("not an HDF5 file (or unreadable)") from None


def save_png(fig, out):
    """Render to a temporary name in the output's folder, then rename: a failure never leaves a
    truncated PNG behind. Raises OSError when the folder cannot be written."""
    folder, base = os.path.split(os.path.abspath(out))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
