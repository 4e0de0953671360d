#!/usr/bin/env python3
"""The Python way a team would otherwise write sentmon's core: the yardstick `benches/pipeline.rs` runs.

NOT part of the product. A confluent-kafka consumer that classifies each message with a PyTorch LSTM of
the same size as the shipped model and produces an enriched JSON record to an output topic, as sentmon
does, with the same delivery guarantees (acks=all, idempotent producer, an input offset is stored only
after its record is acknowledged). No windows, alerts, metrics or dead letters: the yardstick is left
the cheaper side of the comparison.

The model has the shipped model's sizes (read from the bundle's model.json): token embedding
vocab_size x embedding_dim, a bidirectional LSTM of hidden_size run on packed sequences, masked mean and
max pooling, a mean EmbeddingBag of feature_buckets x feature_dim over hashed word 1-2-grams and
character 3-5-grams, and the topic and sentiment heads. Its weights are RANDOM (seeded): only speed is
compared, and the LSTM's cost does not depend on the values of its weights. The tokenizer is a regex
plus a lookup in the bundle's vocabulary, the simple version a team would write.

Modes:
  consume --mode per-message   poll one message, classify it, produce its record
  consume --mode batched       poll up to 64 messages or 20 ms (sentmon's micro-batch), one forward pass
  throughput                   classification alone (tokenisation included), texts/s, as JSON

Run by benches/pipeline.rs with the interpreter of .venv-bench (scripts/bench.sh sets it up).
"""

import argparse
import json
import re
import signal
import statistics
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# sentmon's micro-batch: closes at 64 messages or 20 ms (src/pipeline/batcher.rs's defaults).
BATCH_MAX_MESSAGES = 64
BATCH_MAX_WAIT_SECONDS = 0.020

URL_PATTERN = re.compile(r"(?:https?://|www\.)\S+")
# URLs (already replaced), cashtags, mentions, numbers, words with inner apostrophes, single other chars.
TOKEN_PATTERN = re.compile(r"<url>|\$[a-z][a-z0-9]*(?:[.\-][a-z0-9]+)?|@\w+|\d+(?:[.,]\d+)*|\w+(?:'\w+)*|[^\w\s]")
UNK_ID, URL_ID, NUMBER_ID, CASHTAG_ID, MENTION_ID, EMPTY_ID = 1, 2, 3, 4, 5, 6


class Encoder:
    """Text to token ids (vocabulary lookup) and hashed n-gram feature ids, with the bundle's limits."""

    def __init__(self, bundle: Path):
        tokenizer = json.loads((bundle / "tokenizer.json").read_text())
        config = tokenizer["config"]
        self.vocab = {token: index for index, token in enumerate(tokenizer["vocab"]["tokens"])}
        self.max_tokens = config["max_tokens"]
        self.buckets = config["feature_buckets"]
        self.max_features = config["max_features"]
        self.char_ngram_sizes = range(config["char_ngram_min"], config["char_ngram_max"] + 1)

    def token_id(self, token: str) -> int:
        if token == "<url>":
            return URL_ID
        if token[0].isdigit():
            return NUMBER_ID
        if token[0] == "@" and len(token) > 1:
            return MENTION_ID
        if token[0] == "$" and len(token) > 1:
            return self.vocab.get(token, CASHTAG_ID)
        return self.vocab.get(token, UNK_ID)

    def encode(self, text: str) -> tuple[list[int], list[int], list[int]]:
        tokens = TOKEN_PATTERN.findall(URL_PATTERN.sub(" <url> ", text.lower()))[: self.max_tokens]
        if not tokens:
            return [EMPTY_ID], [], []
        token_ids = [self.token_id(token) for token in tokens]
        token_features = [zlib.crc32(b"u" + token.encode()) % self.buckets for token in tokens]
        token_features += [
            zlib.crc32(b"b" + left.encode() + b" " + right.encode()) % self.buckets
            for left, right in zip(tokens, tokens[1:])
        ]
        char_features = []
        for token in tokens:
            if not token[0].isalpha():
                continue
            marked = f"<{token}>"
            for size in self.char_ngram_sizes:
                for start in range(len(marked) - size + 1):
                    char_features.append(zlib.crc32(b"c" + marked[start : start + size].encode()) % self.buckets)
        token_features = token_features[: self.max_features]
        return token_ids, token_features, char_features[: self.max_features - len(token_features)]


class LstmClassifier(nn.Module):
    """The shipped model's shape: embedding -> BiLSTM -> masked mean+max, plus n-gram bags -> two heads."""

    def __init__(self, architecture: dict):
        super().__init__()
        hidden = architecture["hidden_size"]
        self.token_embedding = nn.Embedding(architecture["vocab_size"], architecture["embedding_dim"], padding_idx=0)
        self.lstm = nn.LSTM(architecture["embedding_dim"], hidden, batch_first=True, bidirectional=True)
        self.feature_bag = nn.EmbeddingBag(architecture["feature_buckets"], architecture["feature_dim"], mode="mean")
        pooled_width = 4 * hidden + 2 * architecture["feature_dim"]
        self.topic_head = nn.Linear(pooled_width, architecture["topic_classes"])
        self.sentiment_head = nn.Linear(pooled_width, architecture["sentiment_classes"])

    def forward(self, tokens, lengths, token_features, token_offsets, char_features, char_offsets):
        packed = pack_padded_sequence(self.token_embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        padding = (torch.arange(states.shape[1])[None, :] >= lengths[:, None]).unsqueeze(-1)
        mean_pooled = states.masked_fill(padding, 0.0).sum(1) / lengths[:, None]
        max_pooled = states.masked_fill(padding, float("-inf")).amax(1)
        token_bag = self.feature_bag(token_features, token_offsets)
        char_bag = self.feature_bag(char_features, char_offsets)
        both = torch.cat([mean_pooled, max_pooled, token_bag, char_bag], 1)
        return self.topic_head(both).softmax(-1), self.sentiment_head(both).softmax(-1)


class Classifier:
    def __init__(self, bundle: Path):
        metadata = json.loads((bundle / "model.json").read_text())
        self.topic_labels = metadata["topic_labels"]
        self.sentiment_labels = metadata["sentiment_labels"]
        self.version = "python-random-" + metadata["version"]
        self.encoder = Encoder(bundle)
        torch.manual_seed(0)
        self.model = LstmClassifier(metadata["architecture"]).eval()

    def classify(self, texts: list[str]) -> list[dict]:
        encoded = [self.encoder.encode(text) for text in texts]
        lengths = torch.tensor([len(token_ids) for token_ids, _, _ in encoded])
        tokens = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
        for row, (token_ids, _, _) in enumerate(encoded):
            tokens[row, : len(token_ids)] = torch.tensor(token_ids)
        with torch.inference_mode():
            topic, sentiment = self.model(
                tokens, lengths, *flat_bag([token for _, token, _ in encoded]), *flat_bag([char for _, _, char in encoded])
            )
        topic_probability, topic_index = topic.max(1)
        results = []
        for row in range(len(texts)):
            sentiment_probabilities = dict(zip(self.sentiment_labels, sentiment[row].tolist()))
            results.append(
                {
                    "topic": self.topic_labels[topic_index[row]],
                    "topic_prob": float(topic_probability[row]),
                    "sentiment": max(sentiment_probabilities, key=sentiment_probabilities.get),
                    "sentiment_probs": sentiment_probabilities,
                    "model_version": self.version,
                }
            )
        return results


def flat_bag(bags: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag's flat (ids, offsets) form of one bag per text."""
    offsets, total = [], 0
    for bag in bags:
        offsets.append(total)
        total += len(bag)
    return torch.tensor([feature for bag in bags for feature in bag], dtype=torch.long), torch.tensor(offsets)


def rfc3339_ms(epoch_ms: float) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def consume(args, classifier: Classifier) -> None:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            # At least once, as sentmon: store an input offset only once its record is acknowledged
            # (in the delivery callback); auto-commit commits what was stored.
            "enable.auto.offset.store": False,
            # The mock broker holds a fetch for the whole fetch.wait.max.ms; sentmon is benched with 5 ms.
            "fetch.wait.max.ms": args.fetch_wait_max_ms,
        }
    )
    producer = Producer(
        {"bootstrap.servers": args.brokers, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    consumer.subscribe([args.input])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def handle(messages) -> None:
        messages = [message for message in messages if message.error() is None]
        if not messages:
            return
        inputs = [json.loads(message.value()) for message in messages]
        processed_at = rfc3339_ms(time.time() * 1000)
        for message, fields, result in zip(messages, inputs, classifier.classify([row["text"] for row in inputs])):
            timestamp_ms = message.timestamp()[1]
            record = {**fields, **result}
            record.update(
                event_time=rfc3339_ms(timestamp_ms),
                event_time_origin="kafka",
                processed_at=processed_at,
                source_topic=message.topic(),
                source_partition=message.partition(),
                source_offset=message.offset(),
            )
            producer.produce(
                args.output,
                json.dumps(record).encode(),
                key=message.key(),
                on_delivery=lambda error, _, source=message: error is None and consumer.store_offsets(message=source),
            )
        producer.poll(0)

    while not stopping:
        if args.mode == "per-message":
            message = consumer.poll(0.1)
            handle([] if message is None else [message])
        else:
            handle(consumer.consume(num_messages=BATCH_MAX_MESSAGES, timeout=BATCH_MAX_WAIT_SECONDS))
    producer.flush(30)
    consumer.close()


def throughput(args, classifier: Classifier) -> None:
    """texts/s at batch 1 and at the batched consumer's 64, median of repeats."""
    rows = [json.loads(line) for line in Path(args.texts).read_text().split("\n") if line.strip()]
    texts = [row["text"] for row in rows]
    texts = (texts * (4096 // len(texts) + 1))[:4096]
    figures = {}
    for batch_size, work in ((1, texts[:1000]), (BATCH_MAX_MESSAGES, texts)):
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            for start in range(0, len(work), batch_size):
                classifier.classify(work[start : start + batch_size])
            rates.append(len(work) / (time.perf_counter() - started))
        figures[f"batch_{batch_size}"] = statistics.median(rates)
    figures["tokenizer"] = len(texts) / timed(lambda: [classifier.encoder.encode(text) for text in texts])
    print(json.dumps(figures))


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="models/default", type=Path, help="bundle whose sizes to copy")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (torch.set_num_threads)")
    commands = parser.add_subparsers(dest="command", required=True)
    consume_parser = commands.add_parser("consume")
    consume_parser.add_argument("--mode", choices=("per-message", "batched"), required=True)
    consume_parser.add_argument("--brokers", required=True)
    consume_parser.add_argument("--input", required=True)
    consume_parser.add_argument("--output", required=True)
    consume_parser.add_argument("--group", required=True)
    consume_parser.add_argument("--fetch-wait-max-ms", type=int, default=5)
    throughput_parser = commands.add_parser("throughput")
    throughput_parser.add_argument("--texts", required=True, help="JSONL with a text field")
    throughput_parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    classifier = Classifier(args.model_dir)
    if args.command == "consume":
        consume(args, classifier)
    else:
        throughput(args, classifier)
    return 0


if __name__ == "__main__":
    sys.exit(main())
