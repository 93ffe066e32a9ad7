#!/usr/bin/python3
"""How much of an STE−NAT difference is the training seed? Issue 5 over several seeds.

bench/train_compare.py compares the methods trained with one seed. The seed fixes the initial
weights, the order of the images and the hardware each STE mini-batch runs on, and on the mild card
the same recipe moves by 1–2 points from one seed to the next: as much as the difference between
the methods. This script trains the chosen methods with each of several seeds on each card (the
same recipe as bench/train_compare.py otherwise), scores every run at one read time with and
without column calibration (mean over --repeats programmings), and prints per card, for each seed,
the accuracies and the difference of each method to `nat`, then the differences' mean, their
standard deviation over the seeds, the standard error of the mean and in how many seeds the method
was at least level with `nat`. The differences are paired: the two runs of a seed share the initial
weights and the image order.

    bench/seed_sweep.py [--seeds 1,2,3,4,5] [--methods "nat,ste cal-trained"] [--time 86400]
        [--cards cards/train-harsh.yaml,cards/train-mild.yaml] [--out bench-out/seeds] [--reuse]

Runs are named s<seed>-<card>-<method>.h5 in --out, so --reuse picks up runs trained before (also
runs of bench/train_compare.py linked under those names: the recipes are the same) and their
scores (kept beside each run as s<seed>-<card>-<method>.eval-<card>-<time>s-raw|cal.json). A benchmark,
not a test: each `ste cal-trained` run takes about ten minutes on two cores, a plain `ste` run six.

With --pretrain-epochs N every method of a seed starts from the same `nat` network trained N epochs
on --pretrain-limit images (all 60000 by default; kept as pre-s<seed>-<card>-nat.h5) and fine-tunes
it for --epochs (`nat` continues as NAT): the usual hardware-aware fine-tuning, in which the cheap
NAT does most of the training. Keep such runs in their own --out: the run names do not say how a
run started.
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (STE_CAL, TIME_NAMES, add_fine_tuning_arguments, add_image_recipe_arguments,  # noqa: E402
                           method_variants_of, pretrain, print_table, recipe_text, score_at, score_image_run,
                           slug, train)


def difference_summary(differences):
    """Mean, standard deviation over the seeds, standard error of the mean and the number of
    non-negative entries of a list of paired differences (in points)."""
    n = len(differences)
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else float("nan")
    return mean, std, std / math.sqrt(n), sum(d >= 0 for d in differences)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_recipe_arguments(parser)
    add_fine_tuning_arguments(parser)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--methods", default=f"nat,{STE_CAL}", help="the first is the reference of the differences")
    parser.add_argument("--time", type=float, default=86400.0, help="read time (s) of the scores")
    parser.add_argument("--out", default="bench-out/seeds")
    parser.add_argument("--reuse", action="store_true",
                        help="keep training runs already in --out, and their scores by the same command")
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    labels = args.methods.split(",")
    variants = method_variants_of(labels, args.ste_cal_read_time)
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "log.txt")
    xbar = [args.xbar, "--threads", str(args.threads)]
    results = {"settings": vars(args), "accuracy": {}}
    for card in args.cards.split(","):
        name = os.path.splitext(os.path.basename(card))[0]
        results["accuracy"][name] = by_seed = {}
        for seed in seeds:
            by_seed[seed] = {}
            start = pretrain(xbar, args, card, seed, args.out, log)
            for label in labels:
                method, extra = variants[label]
                path = os.path.join(args.out, f"s{seed}-{name}-{slug(label)}.h5")
                train(xbar + ["train", "--card", card, "--model", args.model, "--data", "fashion-mnist",
                              "--method", method, "--epochs", str(args.epochs), "--batch", str(args.batch),
                              "--lr", str(args.lr), "--lr-decay", str(args.lr_decay), "--train-limit",
                              str(args.train_limit), "--test-limit", str(args.test_limit), "--seed", str(seed),
                              "-o", path] + start + extra,
                      path, log, args.reuse)
                scored = score_image_run(xbar, args, card, path, [args.time], log)
                by_seed[seed][label] = score_at(scored["raw"], args.time)["mean"]
                by_seed[seed][label + " + column cal."] = score_at(scored["cal"], args.time)["mean"]
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    when = TIME_NAMES.get(args.time, f"{args.time:g} s")
    reference = labels[0]
    print(f"\nTest accuracy (%) at {when}, mean over {args.repeats} programmings per run ({recipe_text(args)}, "
          f"{args.test_limit} test images); differences to {reference} in points")
    for name, by_seed in results["accuracy"].items():
        for suffix in ("", " + column cal."):
            print(f"\n{name}{suffix or ', raw'}")
            rows = []
            differences = {label: [] for label in labels[1:]}
            for seed in seeds:
                scores = by_seed[seed]
                row = [str(seed)] + [f"{100 * scores[label + suffix]:.1f}" for label in labels]
                for label in labels[1:]:
                    differences[label].append(100 * (scores[label + suffix] - scores[reference + suffix]))
                    row.append(f"{differences[label][-1]:+.1f}")
                rows.append(row)
            means = [sum(by_seed[s][label + suffix] for s in seeds) / len(seeds) for label in labels]
            summary_row = ["mean"] + [f"{100 * m:.1f}" for m in means]
            spread_row = ["std over seeds (std error of the mean)", *[""] * len(labels)]
            level_row = [f"seeds at least level with {reference}", *[""] * len(labels)]
            for label in labels[1:]:
                mean, std, error, level = difference_summary(differences[label])
                summary_row.append(f"{mean:+.2f}")
                spread_row.append(f"{std:.2f} ({error:.2f})")
                level_row.append(f"{level} of {len(seeds)}")
            print_table(["seed"] + labels + [f"{label} − {reference}" for label in labels[1:]],
                        rows + [summary_row, spread_row, level_row])


if __name__ == "__main__":
    main()
