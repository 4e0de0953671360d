#!/usr/bin/env python3
"""Classic TF-IDF + logistic-regression baseline on sentmon's own split.

NOT part of the product: a yardstick for the LSTM. It answers "is the model at least as good as
the standard linear baseline on exactly the same data?", so it reads the split that
`sentmon split` writes (train.jsonl, validation.jsonl, test.jsonl; one {"text", "topic"?,
"sentiment"?} object per line) and never makes its own.

Per task (topic, sentiment), using only the rows that carry that task's label:
  features  TF-IDF word 1-2-grams + TF-IDF char_wb 2-5-grams, both sublinear_tf, fitted on train
  model     LogisticRegression, C over C_GRID x class_weight {None, "balanced"}, each fitted on
            train and chosen by validation macro-F1
  output    test accuracy, macro-F1 and per-class F1 of the chosen model (scikit-learn's
            definitions, which src/evaluation.rs follows), printed as one JSON object

Run it in a scratch virtual environment, outside the project:
  python3 -m venv /tmp/baseline-venv && /tmp/baseline-venv/bin/pip install scikit-learn
  sentmon split --out /tmp/split ../shared/data/en
  /tmp/baseline-venv/bin/python scripts/baseline.py /tmp/split
"""

import argparse
import json
import re
import sys
from pathlib import Path

from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

TASKS = ("topic", "sentiment")
SPLITS = ("train", "validation", "test")

# Inverse regularisation strengths tried: a factor-of-4 ladder around scikit-learn's default of 1,
# wide enough that the best value on these corpora (typically 4-16 for TF-IDF text) is inside it.
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)
CLASS_WEIGHTS = (None, "balanced")

# lbfgs needs more than its default 100 iterations to converge on ~20k sparse features at high C.
MAX_ITERATIONS = 3000

# Links are random t.co ids: as char n-grams they are pure noise, and sentmon's tokenizer maps
# every URL to one token, so the baseline sees them the same way.
URL_PATTERN = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
URL_PLACEHOLDER = " httpurl "


def read_split(split_directory: Path, split_name: str) -> list[dict]:
    path = split_directory / f"{split_name}.jsonl"
    if not path.exists():
        sys.exit(f"error: {path} not found (write the split with `sentmon split --out {split_directory}`)")
    rows = []
    with path.open(encoding="utf-8") as split_file:
        for line_number, line in enumerate(split_file, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                sys.exit(f"error: {path}:{line_number}: invalid JSON: {error}")
    return rows


def labelled(rows: list[dict], task: str) -> tuple[list[str], list[str]]:
    pairs = [(URL_PATTERN.sub(URL_PLACEHOLDER, row["text"]), row[task]) for row in rows if row.get(task)]
    return [text for text, _ in pairs], [label for _, label in pairs]


class Features:
    """Word and char_wb TF-IDF side by side, fitted on the training texts only."""

    def __init__(self) -> None:
        self.word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)

    def fit_transform(self, texts: list[str]):
        return hstack([self.word.fit_transform(texts), self.char.fit_transform(texts)]).tocsr()

    def transform(self, texts: list[str]):
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()


def evaluate_task(splits: dict[str, list[dict]], task: str) -> dict:
    (train_texts, train_labels), (validation_texts, validation_labels), (test_texts, test_labels) = (
        labelled(splits[split_name], task) for split_name in SPLITS
    )
    counts = {"n_train": len(train_texts), "n_validation": len(validation_texts), "n_test": len(test_texts)}
    if len(set(train_labels)) < 2 or not validation_texts or not test_texts:
        return {"skipped": "needs two classes in train and rows in validation and test", **counts}

    features = Features()
    train_matrix = features.fit_transform(train_texts)
    validation_matrix = features.transform(validation_texts)
    best = None
    for class_weight in CLASS_WEIGHTS:
        for regularisation in C_GRID:
            model = LogisticRegression(C=regularisation, class_weight=class_weight, max_iter=MAX_ITERATIONS)
            model.fit(train_matrix, train_labels)
            validation_f1 = f1_score(validation_labels, model.predict(validation_matrix), average="macro", zero_division=0)
            # Strictly greater: ties keep the earlier, more regularised and unweighted candidate.
            if best is None or validation_f1 > best[0]:
                best = (validation_f1, regularisation, class_weight, model)

    validation_f1, regularisation, class_weight, model = best
    test_predictions = model.predict(features.transform(test_texts))
    class_names = sorted(set(test_labels) | set(train_labels))
    per_class_f1 = f1_score(test_labels, test_predictions, labels=class_names, average=None, zero_division=0)
    return {
        "test_accuracy": accuracy_score(test_labels, test_predictions),
        "test_per_class_f1": dict(zip(class_names, (float(f1) for f1 in per_class_f1))),
        "test_macro_f1": f1_score(test_labels, test_predictions, average="macro", zero_division=0),
        "validation_macro_f1": validation_f1,
        "C": regularisation,
        "class_weight": class_weight,
        **counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split_directory", type=Path, help="directory with train/validation/test.jsonl from `sentmon split`")
    arguments = parser.parse_args()
    splits = {split_name: read_split(arguments.split_directory, split_name) for split_name in SPLITS}
    results = {task: evaluate_task(splits, task) for task in TASKS}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
