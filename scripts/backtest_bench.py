#!/usr/bin/env python3
"""Backtest throughput with and without a watchlist (README, "Backtest throughput").

Generates a stream-archive-like file (1,000,000 rows by default: 10 topics, 100 messages/s of event
time, `predicted` fields, a fifth of the texts naming a watched name and three tenths a cashtag),
then times `sentmon backtest` on it, alternating plain and `--watchlist examples/watchlist.toml`
runs, and prints the median and range of each. Needs a release build (`cargo build --release`).

    python3 scripts/backtest_bench.py [--rows N] [--repeats N]
"""
import argparse
import datetime
import gzip
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ["Markets", "Macro", "Earnings", "Financials", "Stock Movement", "Fed | Central Banks",
          "M&A | Investments", "Currencies", "Energy | Oil", "Legal | Regulation"]
NAMES = ["Federal Reserve", "UBS", "Credit Suisse", "JPMorgan", "Bank of America", "Goldman Sachs", "ECB", "SEC"]
POPULAR_TICKERS = ["AAPL", "TSLA", "MSFT", "NVDA", "AMZN", "META", "GME", "AMC", "BAC", "JPM", "XOM", "CVX",
                   "PFE", "KO", "NFLX"]
TICKERS = POPULAR_TICKERS + [f"T{index:03d}" for index in range(200)]
WORDS = "shares rise fall after profit warning outlook analysts say market stocks bank rates inflation deal probe".split()


def generate(path, rows):
    rng = random.Random(1)
    start_ms = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000
    with gzip.open(path, "wt") as out:
        for index in range(rows):
            event_time = datetime.datetime.fromtimestamp((start_ms + index * 10) / 1000, datetime.timezone.utc)
            words = rng.sample(WORDS, 6)
            draw = rng.random()
            if draw < 0.2:
                words.insert(0, rng.choice(NAMES))
            elif draw < 0.5:
                words.insert(0, "$" + rng.choice(POPULAR_TICKERS if rng.random() < 0.8 else TICKERS))
            sentiment = rng.choices(["negative", "neutral", "positive"], [0.15, 0.65, 0.2])[0]
            negative = 0.8 if sentiment == "negative" else 0.1
            row = {
                "id": f"m{index}",
                "text": " ".join(words),
                "event_time": event_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "predicted": {"topic": rng.choice(TOPICS), "topic_prob": 0.9, "sentiment": sentiment,
                              "sentiment_probs": {"negative": negative, "neutral": (1 - negative) / 2,
                                                  "positive": (1 - negative) / 2}},
                "model_version": "generated",
            }
            out.write(json.dumps(row) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sentmon = ROOT / "target/release/sentmon"
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "archive.jsonl.gz"
        generate(archive, args.rows)
        modes = {"plain": [], "watchlist": ["--watchlist", str(ROOT / "examples/watchlist.toml")]}
        seconds = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, extra in modes.items():
                started = time.monotonic()
                subprocess.run([sentmon, "backtest", archive, *extra, "--json", Path(scratch) / "report.json"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds[mode].append(time.monotonic() - started)
        for mode, runs in seconds.items():
            median = statistics.median(runs)
            print(f"{mode:9} {args.rows} rows: median {median:.2f} s ({min(runs):.2f}-{max(runs):.2f}), "
                  f"{args.rows / median:,.0f} rows/s")


if __name__ == "__main__":
    main()
