#!/usr/bin/python3
"""The PyTorch reference of an ideal xbar LeNet epoch: the same network (`lenet` or `lenet-wide` of
models/networks.hpp), data (Debian's dataset-fashion-mnist, pixels / 255), initialisation (He normal
before each ReLU, Glorot uniform for the last layer, zero biases), optimiser (Adam, lr 1e-3), batch
(128), learning-rate schedule (`--lr`, `--lr-decay` per epoch), augmentation (`--augment flip`: each
image mirrored left-right with probability 1/2) and epoch order (a fresh shuffle per epoch), trained on the CPU with a chosen thread count.
Prints the wall time of each epoch's training steps and the test accuracy after it, then the
median epoch time, so that `xbar train --method ideal` can be compared on the same machine in the
same run (bench/train_compare.py does not do this: it needs Debian's python3-torch, not a
dependency of xbar).

Usage: bench/pytorch_lenet.py [--model lenet|lenet-wide] [--epochs 3] [--threads 2] [--seed 1]
                              [--lr 1e-3] [--lr-decay 1] [--augment none|flip] [--pool-first]
"""
import argparse
import gzip
import statistics
import struct
import time

import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"
WIDTHS = {"lenet": (6, 16, 120), "lenet-wide": (10, 20, 128)}


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(count, 1, rows, cols).float() / 255
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def network(model, pool_first):
    c1, c2, hidden = WIDTHS[model]
    # xbar pools before the ReLU (the same function and gradients, less work); --pool-first does
    # the same here, the default is the textbook order.
    act_pool = [nn.MaxPool2d(2), nn.ReLU()] if pool_first else [nn.ReLU(), nn.MaxPool2d(2)]
    layers = [nn.Conv2d(1, c1, 5), *act_pool, nn.Conv2d(c1, c2, 5), *act_pool,
              nn.Flatten(), nn.Linear(c2 * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    weighted = [layer for layer in layers if isinstance(layer, (nn.Conv2d, nn.Linear))]
    for layer in weighted[:-1]:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    nn.init.xavier_uniform_(weighted[-1].weight)
    nn.init.zeros_(weighted[-1].bias)
    return nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(WIDTHS), default="lenet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0)
    parser.add_argument("--augment", choices=["none", "flip"], default="none")
    parser.add_argument("--pool-first", action="store_true", help="max-pool before the ReLU, as xbar does")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = idx(f"{DATA}/train-images-idx3-ubyte.gz"), idx(f"{DATA}/train-labels-idx1-ubyte.gz")
    x_test, y_test = idx(f"{DATA}/t10k-images-idx3-ubyte.gz"), idx(f"{DATA}/t10k-labels-idx1-ubyte.gz")
    net = network(args.model, args.pool_first)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    print(f"pytorch {torch.__version__}: {args.model}, {args.threads} thread(s), batch {args.batch}, "
          f"{len(x_train)} training images, adam lr {args.lr} x {args.lr_decay}^(epoch-1), augment {args.augment}, "
          f"{'pool then ReLU' if args.pool_first else 'ReLU then pool'}")
    for epoch in range(1, args.epochs + 1):
        for group in optimiser.param_groups:
            group["lr"] = args.lr * args.lr_decay ** (epoch - 1)
        order = torch.randperm(len(x_train))
        start = time.perf_counter()
        net.train()
        for i in range(0, len(order), args.batch):
            batch = order[i:i + args.batch]
            images = x_train[batch]
            if args.augment == "flip":
                mirror = torch.rand(len(batch)) < 0.5
                images = torch.where(mirror[:, None, None, None], images.flip(3), images)
            optimiser.zero_grad()
            loss = loss_fn(net(images), y_train[batch])
            loss.backward()
            optimiser.step()
        times.append(time.perf_counter() - start)
        net.eval()
        with torch.no_grad():
            accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch}: {times[-1]:.2f} s training, test accuracy {accuracy:.4f}", flush=True)
    print(f"median epoch: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
