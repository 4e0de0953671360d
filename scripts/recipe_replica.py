#!/usr/bin/env python3
"""A PyTorch replica of sentmon's network and training loop, for trying recipes fast on a GPU.

NOT part of the product: a research tool, like scripts/baseline.py. `sentmon train` runs on CPU
(about 16 minutes a run on this project's 2-core machine); this replica runs the same network
(token embedding -> bidirectional LSTM on packed sequences -> masked mean+max pooling, beside the
mean-pooled token and character n-gram bags -> topic and sentiment heads, plus the training-only
auxiliary heads) with the same loss, class weights, AdamW, clipping, early stopping, learning-rate
halving and sentiment calibration, on the exact inputs the Rust encoder makes. It is a replica,
not the product: its figures say which recipe is worth porting, the product's own `train` and
`eval` give the figures that count.

Also: seed ensembles (`ensemble`) and knowledge distillation (a run whose config names
"teachers": the mean of their probabilities on every training text becomes a soft target for
both heads, weighted by "alpha", at temperature "temp").

Inputs: the JSON lines of `cargo run --example encode_split` (see that file), gzipped or not:
  sentmon split --data ../shared/data/en --out /tmp/split
  cargo run --example encode_split -- models/default/tokenizer.json \
      /tmp/split/train.jsonl /tmp/split/validation.jsonl /tmp/split/test.jsonl | gzip > encoded.jsonl.gz

Run (on a machine with PyTorch; a GPU makes it fast):
  EXP_DATA=encoded.jsonl.gz python3 scripts/recipe_replica.py NAME '{"seed": 1, "H": 256}'
  python3 scripts/recipe_replica.py ensemble NAME RUN...
  python3 scripts/recipe_replica.py sweep       # the runs quoted in models/default/MODEL_CARD.md
Each run prints one JSON object and leaves NAME.json and NAME.npz (probabilities) in EXP_WORK.
"""

import gzip, json, os, subprocess, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

DATA = os.environ.get("EXP_DATA", ".exp/encoded.jsonl.gz")
WORK = os.environ.get("EXP_WORK", "/tmp/exp")
DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SENT = ["negative", "neutral", "positive"]
UNK = 1  # text::UNK_ID
BUCKETS = 131072  # the shipped tokenizer's feature_buckets
# Embedding rows: the encoder's max_vocab_size, an upper bound of any vocabulary it builds (rows
# past the real vocabulary are never read).
VOCAB_ROWS = 20000


def load():
    opener = gzip.open if DATA.endswith(".gz") else open
    rows = [json.loads(l) for l in opener(DATA, "rt")]
    if os.environ.get("EXP_LIMIT"):
        # A quick smoke run: about EXP_LIMIT rows of each split, spread over the whole file.
        limit = int(os.environ["EXP_LIMIT"])
        by_split = [[r for r in rows if r["split"] == split] for split in ("train", "validation", "test")]
        rows = [r for split_rows in by_split for r in split_rows[:: max(1, len(split_rows) // limit)]]
    topics = sorted({r["topic"] for r in rows if r.get("topic")})
    out = {}
    for split in ["train", "validation", "test"]:
        rs = [r for r in rows if r["split"] == split]
        n = len(rs)
        tok = torch.zeros(n, 64, dtype=torch.long)
        lens = torch.zeros(n, dtype=torch.long)
        tf_len = max(1, max(r["k"] for r in rs))
        cf_len = max(1, max(len(r["f"]) - r["k"] for r in rs))
        tf = torch.full((n, tf_len), BUCKETS, dtype=torch.long)
        cf = torch.full((n, cf_len), BUCKETS, dtype=torch.long)
        yt = torch.full((n,), -1, dtype=torch.long)
        ys = torch.full((n,), -1, dtype=torch.long)
        for i, r in enumerate(rs):
            t = r["t"][:64]
            tok[i, : len(t)] = torch.tensor(t)
            lens[i] = len(t)
            k = r["k"]
            if k:
                tf[i, :k] = torch.tensor(r["f"][:k])
            if len(r["f"]) > k:
                cf[i, : len(r["f"]) - k] = torch.tensor(r["f"][k:])
            if r.get("topic"):
                yt[i] = topics.index(r["topic"])
            if r.get("sentiment"):
                ys[i] = SENT.index(r["sentiment"])
        out[split] = dict(tok=tok.to(DEV), lens=lens, tf=tf.to(DEV), cf=cf.to(DEV), yt=yt.to(DEV), ys=ys.to(DEV), n=n)
    return out, topics


class Net(nn.Module):
    def __init__(s, V, T, E=64, H=128, D=32, drop=0.5, tokdrop=0.1):
        super().__init__()
        s.emb = nn.Embedding(V, E)
        s.lstm = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        s.bag = nn.EmbeddingBag(BUCKETS + 1, D, mode="mean", padding_idx=BUCKETS)
        nn.init.uniform_(s.bag.weight, -0.05, 0.05)
        with torch.no_grad():
            s.bag.weight[BUCKETS].zero_()
        w = 4 * H + 2 * D
        s.topic, s.sent = nn.Linear(w, T), nn.Linear(w, 3)
        s.aux = nn.ModuleList([nn.Linear(4 * H, T), nn.Linear(4 * H, 3), nn.Linear(2 * D, T), nn.Linear(2 * D, 3)])
        s.drop, s.tokdrop = drop, tokdrop

    def forward(s, tok, lens, tf, cf):
        L = int(lens.max())
        tok = tok[:, :L]
        pos = torch.arange(L, device=tok.device)[None, :]
        real = pos < lens.to(tok.device)[:, None]
        if s.training and s.tokdrop > 0:
            tok = tok.masked_fill((torch.rand(tok.shape, device=tok.device) < s.tokdrop) & real, UNK)
        e = F.dropout(s.emb(tok), s.drop, s.training)
        packed = nn.utils.rnn.pack_padded_sequence(e, lens.cpu(), batch_first=True, enforce_sorted=False)
        o, _ = s.lstm(packed)
        o, _ = nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=L)
        m = real[:, :, None]
        mean = o.masked_fill(~m, 0).sum(1) / lens.to(o.device)[:, None].float()
        mx = o.masked_fill(~m, float("-inf")).amax(1)
        seq = F.dropout(torch.cat([mean, mx], 1), s.drop, s.training)
        bag = F.dropout(torch.cat([s.bag(tf), s.bag(cf)], 1), s.drop, s.training)
        both = torch.cat([seq, bag], 1)
        return s.topic(both), s.sent(both), seq, bag


def class_weights(y, C, mode):
    y = y[y >= 0]
    counts = torch.bincount(y, minlength=C).float()
    freq = torch.where(counts > 0, counts * C / counts.sum(), torch.ones_like(counts))
    return {"none": torch.ones(C), "sqrt": 1 / freq.sqrt(), "balanced": 1 / freq}[mode].to(DEV)


def macro_f1(pred, y, C):
    f1s = []
    for c in range(C):
        tp = ((pred == c) & (y == c)).sum().item()
        fp = ((pred == c) & (y != c)).sum().item()
        fn = ((pred != c) & (y == c)).sum().item()
        if tp + fp + fn == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1s))


def predict(net, d, bs=512):
    net.eval()
    pt, ps = [], []
    with torch.no_grad():
        for i in range(0, d["n"], bs):
            t, s, _, _ = net(d["tok"][i : i + bs], d["lens"][i : i + bs], d["tf"][i : i + bs], d["cf"][i : i + bs])
            pt.append(F.log_softmax(t, 1))
            ps.append(F.log_softmax(s, 1))
    return torch.cat(pt), torch.cat(ps)


def metrics(lpt, lps, d, T, shift=None):
    mt, ms = d["yt"] >= 0, d["ys"] >= 0
    pt = lpt[mt].argmax(1)
    sl = lps[ms] + (torch.tensor(shift, device=lps.device) if shift is not None else 0)
    ps = sl.argmax(1)
    return dict(
        topic_acc=(pt == d["yt"][mt]).float().mean().item(),
        topic_f1=macro_f1(pt, d["yt"][mt], T),
        sent_acc=(ps == d["ys"][ms]).float().mean().item(),
        sent_f1=macro_f1(ps, d["ys"][ms], 3),
    )


def fit_shift(lps, d):
    ms = d["ys"] >= 0
    lp, y = lps[ms], d["ys"][ms]
    shift = [0.0, 0.0, 0.0]
    best = macro_f1(lp.argmax(1), y, 3)
    for _ in range(4):
        improved = False
        for c in (1, 2):
            for step in range(-30, 31):
                cand = list(shift)
                cand[c] = step * 0.1
                sc = macro_f1((lp + torch.tensor(cand, device=lp.device)).argmax(1), y, 3)
                if sc > best + 1e-12:
                    best, shift, improved = sc, cand, True
        if not improved:
            break
    return shift


def train(data, topics, cfg):
    torch.manual_seed(cfg.get("seed", 1))
    rng = np.random.default_rng(cfg.get("seed", 1))
    T = len(topics)
    tr, va = data["train"], data["validation"]
    net = Net(VOCAB_ROWS, T, E=cfg.get("E", 64), H=cfg.get("H", 128), D=cfg.get("D", 32), drop=cfg.get("drop", 0.5),
              tokdrop=cfg.get("tokdrop", 0.1)).to(DEV)
    wt = class_weights(tr["yt"].cpu(), T, cfg.get("weighting", "balanced"))
    ws = class_weights(tr["ys"].cpu(), 3, cfg.get("weighting", "balanced"))
    lr = cfg.get("lr", 2e-3)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.get("wd", 0.01))
    soft = cfg.get("soft")  # (soft topic probs [n,T], soft sentiment probs [n,3]) for every train row
    alpha = cfg.get("alpha", 1.0)
    temp = cfg.get("temp", 1.0)
    rows = np.arange(tr["n"]) if soft is not None else np.nonzero(((tr["yt"] >= 0) | (tr["ys"] >= 0)).cpu().numpy())[0]
    best, best_state, best_epoch, bad = -1, None, 0, 0
    bs = cfg.get("bs", 64)
    for epoch in range(1, cfg.get("epochs", 30) + 1):
        net.train()
        rng.shuffle(rows)
        for i in range(0, len(rows), bs):
            idx = torch.from_numpy(rows[i : i + bs]).to(DEV)
            lt, ls, seq, bag = net(tr["tok"][idx], tr["lens"][idx.cpu()], tr["tf"][idx], tr["cf"][idx])
            yt, ys = tr["yt"][idx], tr["ys"][idx]
            n = len(idx)
            losses = []

            def hard(logits, y, w, scale=1.0):
                m = y >= 0
                if m.any():
                    losses.append(scale * F.cross_entropy(logits[m], y[m], weight=w) * (m.sum() / n))

            hard(lt, yt, wt)
            hard(ls, ys, ws)
            hard(net.aux[0](seq), yt, wt, 0.5)
            hard(net.aux[1](seq), ys, ws, 0.5)
            hard(net.aux[2](bag), yt, wt, 0.5)
            hard(net.aux[3](bag), ys, ws, 0.5)
            if soft is not None:
                st, ss = soft[0][idx], soft[1][idx]
                kl = lambda lg, p: -(p * F.log_softmax(lg / temp, 1)).sum(1).mean() * temp * temp
                losses.append(alpha * (kl(lt, st) + kl(ls, ss)))
            loss = torch.stack(losses).sum()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.get("clip", 1.0))
            opt.step()
        lpt, lps = predict(net, va)
        m = metrics(lpt, lps, va, T)
        score = (m["topic_f1"] + m["sent_f1"]) / 2
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.get("patience", 4):
                break
            lr /= 2
            for g in opt.param_groups:
                g["lr"] = lr
    net.load_state_dict(best_state)
    return net, best_epoch


def run(name, cfg):
    t0 = time.time()
    data, topics = load()
    T = len(topics)
    if cfg.get("teachers"):
        probs = [np.load(f"{WORK}/{t}.npz") for t in cfg["teachers"]]
        cfg["soft"] = (
            torch.tensor(np.mean([p["train_t"] for p in probs], 0), device=DEV),
            torch.tensor(np.mean([p["train_s"] for p in probs], 0), device=DEV),
        )
    net, best_epoch = train(data, topics, cfg)
    out = {}
    lp = {s: predict(net, data[s]) for s in ["train", "validation", "test"]}
    shift = fit_shift(lp["validation"][1], data["validation"])
    for s in ["validation", "test"]:
        out[s] = metrics(*lp[s], data[s], T)
        out[s + "_cal"] = metrics(*lp[s], data[s], T, shift)
    np.savez(f"{WORK}/{name}.npz", **{f"{s[:5]}_{h}": lp[s][i].exp().cpu().numpy() for s in lp for i, h in enumerate("ts")})
    res = dict(name=name, best_epoch=best_epoch, shift=shift, secs=round(time.time() - t0, 1),
               cfg={k: v for k, v in cfg.items() if k != "soft"}, **out)
    print(json.dumps(res), flush=True)
    with open(f"{WORK}/{name}.json", "w") as f:
        json.dump(res, f)


def ensemble(names, label):
    data, topics = load()
    T = len(topics)
    probs = [np.load(f"{WORK}/{n}.npz") for n in names]
    res = {"name": label}
    lpv = [torch.tensor(np.log(np.mean([p[f"valid_{h}"] for p in probs], 0) + 1e-12), device=DEV) for h in "ts"]
    shift = fit_shift(lpv[1], data["validation"])
    for s, key in [("validation", "valid"), ("test", "test")]:
        lp = [torch.tensor(np.log(np.mean([p[f"{key}_{h}"] for p in probs], 0) + 1e-12), device=DEV) for h in "ts"]
        res[s] = metrics(*lp, data[s], T)
        res[s + "_cal"] = metrics(*lp, data[s], T, shift)
    print(json.dumps(res), flush=True)
    with open(f"{WORK}/{label}.json", "w") as f:
        json.dump(res, f)


# The sweep quoted in the model card: five seeds of the shipped recipe and one change each, in
# parallel; then seed ensembles and two distilled students.
SWEEP_PHASE_1 = [(f"base{seed}", {"seed": seed}) for seed in range(1, 6)] + [
    ("wnone", {"seed": 1, "weighting": "none"}),
    ("wsqrt", {"seed": 1, "weighting": "sqrt"}),
    ("h256", {"seed": 1, "H": 256}),
    ("e128", {"seed": 1, "E": 128}),
    ("d64", {"seed": 1, "D": 64}),
]
FIVE_SEEDS = [f"base{seed}" for seed in range(1, 6)]
SWEEP_STUDENTS = [
    ("kd5a1s6", {"seed": 6, "teachers": FIVE_SEEDS, "alpha": 1.0, "epochs": 10}),
    ("kd1a1s6", {"seed": 6, "teachers": ["base1"], "alpha": 1.0, "epochs": 10}),
]


def sweep():
    def parallel(runs):
        children = [subprocess.Popen([sys.executable, __file__, name, json.dumps(cfg)]) for name, cfg in runs]
        if any(child.wait() for child in children):
            sys.exit("a sweep run failed")

    parallel(SWEEP_PHASE_1)
    ensemble(FIVE_SEEDS, "ens5")
    ensemble(FIVE_SEEDS[:3], "ens3")
    parallel(SWEEP_STUDENTS)


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    if sys.argv[1] == "sweep":
        sweep()
    elif sys.argv[1] == "ensemble":
        ensemble(sys.argv[3:], sys.argv[2])
    else:
        run(sys.argv[1], json.loads(sys.argv[2]))
