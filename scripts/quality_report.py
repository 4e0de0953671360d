#!/usr/bin/env python3
"""Prints sentmon's and the TF-IDF baseline's test figures side by side (scripts/quality.sh).

Inputs: the JSON reports of `sentmon eval --json` for the topic and the sentiment head, and the
JSON object scripts/baseline.py prints. Standard library only.
"""

import argparse
import json
from pathlib import Path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def head_table(task: str, model: dict, baseline: dict, model_label: str) -> list[str]:
    lines = [
        f"## {task} (test rows: sentmon {model['n']}, baseline {baseline['n_test']})",
        f"{'':34} {'sentmon':>9} {'TF-IDF':>9} {'diff':>7}",
    ]

    def row(name: str, ours: float, theirs: float) -> str:
        return f"{name:34} {ours:9.3f} {theirs:9.3f} {ours - theirs:+7.3f}"

    lines.append(row("accuracy", model["accuracy"], baseline["test_accuracy"]))
    lines.append(row("macro-F1", model["macro_f1"], baseline["test_macro_f1"]))
    lines.append("per-class F1 (support):")
    baseline_f1 = baseline.get("test_per_class_f1", {})
    for label, metrics in model["per_class"].items():
        theirs = baseline_f1.get(label)
        name = f"  {label} ({metrics['support']})"
        if theirs is None:
            lines.append(f"{name:34} {metrics['f1']:9.3f} {'-':>9}")
        else:
            lines.append(row(name, metrics["f1"], theirs))
    lines.append(
        f"baseline chosen on validation: C={baseline['C']}, class_weight={baseline['class_weight']}; model {model_label}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-label", default="sentmon", help="how to name the scored bundle")
    parser.add_argument("topic_report", type=Path)
    parser.add_argument("sentiment_report", type=Path)
    parser.add_argument("baseline_report", type=Path)
    arguments = parser.parse_args()
    baseline = read_json(arguments.baseline_report)
    lines: list[str] = []
    for task, path in (("topic", arguments.topic_report), ("sentiment", arguments.sentiment_report)):
        lines += head_table(task, read_json(path), baseline[task], arguments.model_label)
        lines.append("")
    print("\n".join(lines).rstrip())


if __name__ == "__main__":
    main()
