#!/usr/bin/python3
"""Writes the tiny IDX test files of tests/models/test_fashion_mnist.cpp (run from this folder).

Pixel p (row-major) of image k is (37*k + 11*p) % 256; labels are listed below.
"""
import gzip
import os
import struct


def images(count, rows=28, cols=28, magic=2051, header_count=None):
    n = count if header_count is None else header_count
    head = struct.pack(">IIII", magic, n, rows, cols)
    body = bytes((37 * k + 11 * p) % 256 for k in range(count) for p in range(rows * cols))
    return head + body


def labels(values, magic=2049, header_count=None):
    n = len(values) if header_count is None else header_count
    return struct.pack(">II", magic, n) + bytes(values)


def write(folder, name, data, compress=True):
    os.makedirs(folder, exist_ok=True)
    if compress:
        with open(os.path.join(folder, name + ".gz"), "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                g.write(data)
    else:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


TRAIN = [9, 0, 3]
TEST = [5, 7]
for folder, compress in (("gz", True), ("plain", False)):
    write(folder, "train-images-idx3-ubyte", images(3), compress)
    write(folder, "train-labels-idx1-ubyte", labels(TRAIN), compress)
    write(folder, "t10k-images-idx3-ubyte", images(2), compress)
    write(folder, "t10k-labels-idx1-ubyte", labels(TEST), compress)

write("bad_magic", "train-images-idx3-ubyte", images(3, magic=2049))
write("bad_magic", "train-labels-idx1-ubyte", labels(TRAIN))
write("count_mismatch", "train-images-idx3-ubyte", images(3))
write("count_mismatch", "train-labels-idx1-ubyte", labels([9, 0]))
write("truncated", "train-images-idx3-ubyte", images(2, header_count=3))  # header says 3, holds 2
write("truncated", "train-labels-idx1-ubyte", labels(TRAIN))
write("label12", "train-images-idx3-ubyte", images(3))
write("label12", "train-labels-idx1-ubyte", labels([9, 12, 3]))
write("bad_dims", "train-images-idx3-ubyte", images(3, rows=4, cols=5))
write("bad_dims", "train-labels-idx1-ubyte", labels(TRAIN))
write("missing_labels", "train-images-idx3-ubyte", images(3))

# A compressed stream cut short (the gzip file itself is truncated).
write("cut_gzip", "train-labels-idx1-ubyte", labels(TRAIN))
data = gzip.compress(images(3), mtime=0)
with open(os.path.join("cut_gzip", "train-images-idx3-ubyte.gz"), "wb") as f:
    f.write(data[: len(data) // 2])
