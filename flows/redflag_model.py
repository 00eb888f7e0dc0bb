"""A second opinion on emergencies: a small classifier over character n-grams.

The red-flag lexicon (``flows/redflags.py``) is the first pass: explainable, and a hit sends the
emergency instructions at once. Its misses are new wordings, and its false alarms scary words
in harmless messages. This model reads the same normalised text as overlapping character 1- to
5-grams (so Russian endings, Chinese without word breaks and misspellings share features) and
gives the probability that a message describes an emergency. It never sends emergency
instructions by itself:

* ``possible``: a message the lexicon did not flag but the model scores at or above the
  threshold is met with "Is this an emergency?" and the emergency number instead of the next
  intake question;
* ``doubts``: a message the lexicon flagged but the model scores below ``doubt`` (0.2) is met
  with that question instead of the instructions — only for flags whose data allows it
  (``doubtable`` in redflags.toml; never self-harm or chest pain).

The weights are a logistic regression, stored in ``flows/questionnaires/redflag_model.json.gz``
(a few hundred kB) with the list of files and their SHA-256 it was trained on, the n-gram sizes,
the threshold and the doubt level. They are made by this module's ``train``
(``python -m flows.redflag_model``) from the project's own labelled phrases: every red-flag
phrase set (held-out rounds and training sets: emergencies and benign look-alikes) and every
prefill set (ordinary complaints, all benign). Nothing is downloaded; inference is pure Python
dictionary look-ups, well under a millisecond for a chat message and linear in its length (a
long message is scored in overlapping windows and the highest window counts).

Training needs numpy (a dependency of matplotlib, already installed); inference does not.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flows.redflags import normalize, registry

DEFAULT_PATH = Path(__file__).parent / "questionnaires" / "redflag_model.json.gz"
NGRAMS = (1, 2, 3, 4, 5)
WINDOW = 160  # characters scored together; longer messages are scored window by window
STRIDE = 80
MAX_CHARS = 4096  # Telegram's longest message; the rest is not read
_BREAKS = re.compile(r"[.!?;\n。！？；]+")


class ModelError(ValueError):
    """The weights file is missing or malformed (the message names the file)."""


@dataclass(frozen=True)
class Model:
    """Weights of the logistic regression and its decision threshold."""

    weights: dict[str, float]
    bias: float
    threshold: float
    ngrams: tuple[int, ...]
    meta: dict[str, Any]
    doubt: float = 0.0  # below this, a lexicon hit is asked about instead (see ``doubts``)

    def doubts(self, text: str) -> bool:
        """The lexicon flagged this text but the model finds it very unlikely to be an
        emergency (below ``doubt``): "is this an emergency?" rather than instructions."""
        return long_enough(text) and self.probability(text) < self.doubt

    def probability(self, text: str) -> float:
        """P(emergency) of the highest-scoring window of the normalised text."""
        norm = normalize(text[:MAX_CHARS])
        if not norm:
            return 0.0
        return max(self._window(w) for w in set(windows(norm)))  # a repeated window once

    def _window(self, chunk: str) -> float:
        feats = features(chunk, self.ngrams)
        if not feats:
            return _sigmoid(self.bias)
        w = self.weights
        z = sum(w.get(f, 0.0) for f in feats) / math.sqrt(len(feats))
        return _sigmoid(self.bias + z)


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def features(chunk: str, ngrams: Sequence[int] = NGRAMS) -> set[str]:
    """Distinct character n-grams of a normalised chunk, with a space at both ends."""
    s = f" {chunk} "
    out: set[str] = set()
    for n in ngrams:
        out.update(s[i : i + n] for i in range(len(s) - n + 1))
    return out


def windows(norm: str) -> list[str]:
    """Sentences of the normalised text, each cut into overlapping windows of WINDOW chars;
    a short message is one window."""
    if len(norm) <= WINDOW:
        return [norm]
    out: list[str] = []
    for part in _BREAKS.split(norm):
        part = part.strip()
        if not part:
            continue
        if len(part) <= WINDOW:
            out.append(part)
            continue
        for start in range(0, len(part) - STRIDE, STRIDE):
            out.append(part[start : start + WINDOW])
    return out or [norm[:WINDOW]]


def load(path: Path | None = None) -> Model:
    """Read the weights file; ``ModelError`` names it when it is missing or malformed."""
    path = path or DEFAULT_PATH
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
        # Weights are stored to two decimals: one float object per distinct value, shared
        # (about a sixth less memory than a float object per n-gram).
        shared: dict[float, float] = {}
        weights = {
            str(k): shared.setdefault(float(v), float(v)) for k, v in data["weights"].items()
        }
        return Model(
            weights=weights,
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            ngrams=tuple(int(n) for n in data["ngrams"]),
            doubt=float(data.get("doubt", 0.0)),
            meta={k: v for k, v in data.items() if k != "weights"},
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise ModelError(f"{path.name}: {exc}") from None


@cache
def _default() -> Model:
    return load()


def validate() -> None:
    """Start-up check: the weights load (raises ``ModelError``)."""
    _default()


def probability(text: str) -> float:
    """P(the message describes an emergency), 0..1."""
    return _default().probability(text)


MIN_WEIGHT = 12  # characters (a Chinese character counts two): shorter texts are not judged


def long_enough(text: str) -> bool:
    """Enough text for the model to mean anything: "eleven" or "help" are a handful of
    n-grams whose weights say little; the lexicon and the intake's own rules handle them."""
    weight = 0
    for ch in normalize(text[:64]):
        if not ch.isspace():
            weight += 2 if "\u3400" <= ch <= "\u9fff" else 1
    return weight >= MIN_WEIGHT


def doubted(text: str, flag: str) -> bool:
    """The lexicon's hit of ``flag`` on this text is asked about instead of instructed: the
    flag allows it (``doubtable`` in redflags.toml) and the model finds the text very unlikely
    to be an emergency (see Model.doubts)."""
    return registry()[flag].doubtable and _default().doubts(text)


def doubts(text: str) -> bool:
    """The model finds this text very unlikely to be an emergency (see Model.doubts), whatever
    the flag; ``doubted`` is the decision for a hit."""
    return _default().doubts(text)


def possible(text: str) -> bool:
    """Should Careline ask "is this an emergency?" (the lexicon did not flag it)."""
    model = _default()
    return long_enough(text) and model.probability(text) >= model.threshold


# --- training ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


@dataclass(frozen=True)
class Example:
    text: str
    emergency: bool
    source: str  # "redflag" (emergencies and hard negatives) or "prefill" (complaints)


def training_files() -> list[Path]:
    return [
        DATA / "redflag_phrases.tsv",
        *sorted((DATA / "redflag_rounds").glob("round-*.tsv")),
        *sorted((DATA / "redflag_train").glob("train-*.tsv")),
        *sorted((DATA / "understand_rounds").glob("prefill-*.tsv")),
    ]


def read_examples(paths: Iterable[Path]) -> list[Example]:
    out: list[Example] = []
    for path in paths:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if "label" in row:
                    out.append(Example(row["text"], row["label"] != "none", "redflag"))
                else:
                    out.append(Example(row["text"], False, "prefill"))
    return out


def _fit(
    docs: Sequence[list[int]], ys: Sequence[float], size: int, *, epochs: int, l2: float
) -> tuple[Any, float]:
    import numpy as np

    w = np.zeros(size)
    b = 0.0
    pos = sum(ys)
    neg = len(ys) - pos
    # Benign phrases weigh as much in total as emergencies: a false alarm is not free.
    cw = {1.0: len(ys) / (2 * pos), 0.0: len(ys) / (2 * neg)}
    order = list(range(len(docs)))
    rng = random.Random(12)  # noqa: S311 - a reproducible shuffle, not a secret
    idx = [np.asarray(d, dtype=np.int64) for d in docs]
    for epoch in range(epochs):
        rng.shuffle(order)
        lr = 0.5 / (1 + epoch * 0.3)
        for i in order:
            ix = idx[i]
            if not len(ix):
                continue
            s = 1.0 / math.sqrt(len(ix))
            z = b + float(w[ix].sum()) * s
            p = _sigmoid(z)
            g = (p - ys[i]) * cw[ys[i]]
            w[ix] -= lr * (g * s + l2 * w[ix])
            b -= lr * g * 0.1
    return w, b


def _encode(exs: Sequence[Example], vocab: dict[str, int]) -> list[list[int]]:
    docs = []
    for ex in exs:
        norm = normalize(ex.text)[:WINDOW]
        docs.append([vocab[f] for f in features(norm) if f in vocab])
    return docs


def _vocab(exs: Sequence[Example], min_df: int) -> dict[str, int]:
    df: Counter[str] = Counter()
    for ex in exs:
        df.update(features(normalize(ex.text)[:WINDOW]))
    return {f: i for i, f in enumerate(sorted(f for f, c in df.items() if c >= min_df))}


EPOCHS = 20
MIN_DF = 3  # an n-gram seen in fewer phrases is not a feature
MIN_WEIGHT_KEPT = 0.05  # smaller weights change no decision and are not stored
DOUBT = 0.2  # below this probability a lexicon hit is asked about (flags that allow it)


def cross_validate(
    exs: Sequence[Example], folds: int = 5, epochs: int = EPOCHS, l2: float = 1e-4
) -> list[tuple[float, Example]]:
    """Out-of-fold probabilities: each example scored by a model that never saw it."""
    rng = random.Random(7)  # noqa: S311 - reproducible folds
    order = list(range(len(exs)))
    rng.shuffle(order)
    out: list[tuple[float, Example]] = []
    for k in range(folds):
        test = [exs[i] for i in order[k::folds]]
        train_ = [exs[i] for j, i in enumerate(order) if j % folds != k]
        model = _train_model(train_, epochs=epochs, l2=l2, threshold=0.5)
        out += [(model.probability(ex.text), ex) for ex in test]
    return out


def _train_model(
    exs: Sequence[Example], *, epochs: int, l2: float, threshold: float, min_df: int = MIN_DF
) -> Model:
    vocab = _vocab(exs, min_df)
    docs = _encode(exs, vocab)
    w, b = _fit(docs, [1.0 if e.emergency else 0.0 for e in exs], len(vocab), epochs=epochs, l2=l2)
    inv = {i: f for f, i in vocab.items()}
    weights = {inv[i]: round(float(x), 2) for i, x in enumerate(w) if abs(x) >= MIN_WEIGHT_KEPT}
    return Model(weights, round(b, 4), threshold, NGRAMS, {})


# Out-of-fold share of the benign look-alikes the threshold may ask about. The training sets'
# look-alikes are harder than the rounds' (lists of denied symptoms, minor versions): at 0.15
# of them, held-out rounds 02-05 had 1.8% of their benign phrases asked (dev check, 2026-12-07).
MAX_FPR = 0.15


def pick_threshold(scored: Sequence[tuple[float, Example]], max_fpr: float) -> float:
    """The lowest threshold at which out-of-fold false alarms on the red-flag sets' benign
    phrases stay within ``max_fpr``, and on ordinary complaints within half of it."""
    benign = [(p, e.source) for p, e in scored if not e.emergency]
    hard = sorted((p for p, src in benign if src == "redflag"), reverse=True)
    easy = sorted((p for p, src in benign if src == "prefill"), reverse=True)
    t_hard = hard[int(len(hard) * max_fpr)] if hard else 0.5
    t_easy = easy[int(len(easy) * max_fpr / 2)] if easy else 0.5
    return round(max(t_hard, t_easy, 0.5) + 1e-4, 4)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(out: Path = DEFAULT_PATH, *, max_fpr: float = MAX_FPR) -> dict[str, Any]:
    """Cross-validate (for the threshold and the honest figure), then fit on everything."""
    files = training_files()
    exs = read_examples(files)
    scored = cross_validate(exs)
    threshold = pick_threshold(scored, max_fpr)
    model = _train_model(exs, epochs=EPOCHS, l2=1e-4, threshold=threshold)
    pos = [p for p, e in scored if e.emergency]
    hard = [p for p, e in scored if not e.emergency and e.source == "redflag"]
    easy = [p for p, e in scored if not e.emergency and e.source == "prefill"]
    cv = {
        "emergencies_flagged": round(sum(p >= threshold for p in pos) / len(pos), 4),
        "benign_look_alikes_flagged": round(sum(p >= threshold for p in hard) / len(hard), 4),
        "complaints_flagged": round(sum(p >= threshold for p in easy) / max(1, len(easy)), 4),
    }
    data = {
        "version": 1,
        "kind": "logistic regression over character n-grams of normalised text",
        "ngrams": list(NGRAMS),
        "window": WINDOW,
        "threshold": threshold,
        "doubt": DOUBT,
        "bias": model.bias,
        "trained_on": {str(p.relative_to(ROOT)): _sha(p) for p in files},
        "examples": len(exs),
        "cross_validation_5_fold": cv,
        "weights": dict(sorted(model.weights.items())),
    }
    with gzip.GzipFile(out, "wb", mtime=0) as fh:
        fh.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
    return {k: v for k, v in data.items() if k != "weights"} | {"features": len(model.weights)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the red-flag second-opinion model.")
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--max-fpr", type=float, default=MAX_FPR)
    args = ap.parse_args(argv)
    report = json.dumps(train(args.out, max_fpr=args.max_fpr), indent=1, ensure_ascii=False)
    sys.stdout.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
