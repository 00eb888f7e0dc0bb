"""Red-flag detector: confusion table over the labelled phrase set, and detect() timing.

    python -m benchmarks.redflags [--repeat 5]
    python -m benchmarks.redflags --unseen NEW.tsv --record round-04   # a new round, first run

The phrase set is the first development set (``tests/data/redflag_phrases.tsv``) plus every
held-out round in ``tests/data/redflag_rounds/round-NN.tsv``. Each round was written from a
brief that names only the flag kinds and languages, measured once before anyone looked at it
(that first figure is kept in ``first_runs.json``, never overwritten), and only then merged.

Prints the confusion table per language and overall and per-flag recall for the latest round
and for the whole set, the phrases that were missed or wrongly flagged, and detect()'s p50/p99
time; the last stdout line is one JSON object (see benchmarks/README.md).

An emergency phrase counts as detected (TP) when detect() returns a flag at least as urgent
as its label (crisis > emergency_ambulance > emergency); a phrase labelled self_harm must get
a crisis hit. A ``none`` phrase with any hit is a false positive.

Beside them, the second-opinion model (flows/redflag_model.py): "+asked recall" also counts
the misses it meets with "is this an emergency?" and the emergency number, and "asked benign"
is the share of benign phrases asked that question needlessly. The model is trained on the
merged sets, so only an unseen round's figure for it means anything.

Timing: detect() per phrase, and per message (detect(), then the model when detect() found
nothing), p50/p99 over the whole set; and per message on 4,096-character inputs (Telegram's
longest message).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flows import redflag_model, redflags

ROOT = Path(__file__).resolve().parents[1]
PHRASES = ROOT / "tests" / "data" / "redflag_phrases.tsv"
ROUNDS = ROOT / "tests" / "data" / "redflag_rounds"
FIRST_RUNS = ROUNDS / "first_runs.json"
NONE = "none"


@dataclass(frozen=True)
class Phrase:
    """One labelled phrase of the set."""

    lang: str
    label: str  # a flag id or "none"
    text: str


@dataclass
class Counts:
    """Confusion counts for one slice of the phrase set."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    same_flag: int = 0  # true positives whose detected flag is the labelled one
    asked: int = 0  # misses met with "is this an emergency?" (model, or a doubted hit)
    asked_benign: int = 0  # benign phrases asked "is this an emergency?" needlessly
    lexicon_tp: int = 0  # emergencies the lexicon alone detects (before the model's doubt)
    lexicon_fp: int = 0  # benign phrases the lexicon alone flags
    doubted: int = 0  # lexicon hits the model doubted (asked instead of instructions)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 for an empty slice."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def fpr(self) -> float:
        """FP / (FP + TN); 0.0 for an empty slice."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def recall_or_asked(self) -> float:
        """(TP + misses the model asks about) / emergencies: the patient sees the emergency
        number either way, as instructions or as the question."""
        return (self.tp + self.asked) / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def lexicon_recall(self) -> float:
        """The lexicon alone, as every round before round 06 was measured."""
        return self.lexicon_tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def lexicon_fpr(self) -> float:
        return self.lexicon_fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def asked_rate(self) -> float:
        """Benign phrases with no lexicon hit that are asked about, / benign phrases."""
        return self.asked_benign / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def flag_match(self) -> float:
        """Share of true positives whose flag is exactly the label."""
        return self.same_flag / self.tp if self.tp else 1.0


@dataclass
class Evaluation:
    """The result of running detect() over the phrase set."""

    by_lang: dict[str, Counts]
    overall: Counts
    by_flag: dict[str, Counts]
    misses: list[tuple[Phrase, redflags.Hit | None]] = field(default_factory=list)
    false_alarms: list[tuple[Phrase, redflags.Hit]] = field(default_factory=list)
    other_flag: list[tuple[Phrase, redflags.Hit]] = field(default_factory=list)


def load_phrases(path: Path = PHRASES) -> list[Phrase]:
    """Read the TSV (header ``lang label text``); raises ValueError on a malformed row."""
    out: list[Phrase] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != ["lang", "label", "text"]:
            raise ValueError(f"{path.name}: header must be lang, label, text; got {header}")
        for n, row in enumerate(reader, start=2):
            if len(row) != 3 or not row[2].strip():
                raise ValueError(f"{path.name}:{n}: expected 3 tab-separated fields: {row}")
            lang, label, text = row
            if lang not in redflags.LANGUAGES:
                raise ValueError(f"{path.name}:{n}: unknown language {lang!r}")
            if label != NONE and label not in redflags.RED_FLAG_IDS:
                raise ValueError(f"{path.name}:{n}: unknown label {label!r}")
            out.append(Phrase(lang, label, text))
    return out


def _level(flag: redflags.RedFlag) -> int:
    return 0 if flag.crisis else 1 + redflags.DISPOSITIONS.index(flag.disposition)


def is_detected(label: str, hit: redflags.Hit | None) -> bool:
    """Whether a hit counts as detecting an emergency labelled ``label``."""
    if hit is None:
        return False
    reg = redflags.registry()
    want = reg[label]
    if want.crisis:
        return hit.crisis
    return _level(reg[hit.flag]) <= _level(want)


def answer(text: str) -> tuple[redflags.Hit | None, bool, bool]:
    """What Careline does with a message: (the lexicon's hit, whether the model doubts it,
    whether the patient is asked "is this an emergency?"). A hit that is not doubted gets
    the emergency instructions; a doubted hit, or no hit that the model finds possible, gets
    the question with the emergency number (handlers/patient/emergency.py, flows/intake.py)."""
    hit = redflags.detect(text)
    if hit is None:
        return None, False, redflag_model.possible(text)
    doubted = redflag_model.doubted(text, hit.flag)
    return hit, doubted, doubted


def evaluate(phrases: Iterable[Phrase]) -> Evaluation:
    """Run detect() and the model on every phrase and count (see ``answer``)."""
    ev = Evaluation(
        by_lang={lang: Counts() for lang in redflags.LANGUAGES},
        overall=Counts(),
        by_flag={fid: Counts() for fid in redflags.RED_FLAG_IDS},
    )
    for phrase in phrases:
        hit, doubted, asked = answer(phrase.text)
        slices = [ev.by_lang[phrase.lang], ev.overall]
        if phrase.label == NONE:
            for c in slices:
                c.lexicon_fp += hit is not None
                c.doubted += doubted
                if hit is None or doubted:
                    c.tn += 1
                    c.asked_benign += asked
                else:
                    c.fp += 1
            if hit is not None and not doubted:
                ev.false_alarms.append((phrase, hit))
            continue
        slices.append(ev.by_flag[phrase.label])
        found = is_detected(phrase.label, hit)
        for c in slices:
            c.lexicon_tp += found
            c.doubted += doubted
        if found and not doubted:
            assert hit is not None
            same = hit.flag == phrase.label
            for c in slices:
                c.tp += 1
                c.same_flag += same
            if not same:
                ev.other_flag.append((phrase, hit))
        else:
            for c in slices:
                c.fn += 1
                c.asked += asked
            ev.misses.append((phrase, hit))
    return ev


def round_files(folder: Path = ROUNDS) -> list[Path]:
    """The held-out rounds, oldest first."""
    return sorted(folder.glob("round-*.tsv"))


def whole_set() -> list[Phrase]:
    """The development set and every merged round."""
    out = load_phrases(PHRASES)
    for path in round_files():
        out.extend(load_phrases(path))
    return out


def summary(ev: Evaluation) -> dict[str, object]:
    """Recall and false-positive rate per language and overall, as a JSON-able dict."""
    out: dict[str, object] = {}
    for name, c in [*ev.by_lang.items(), ("overall", ev.overall)]:
        out[name] = {
            "tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn,
            "recall": round(c.recall, 4), "fpr": round(c.fpr, 4),
            "recall_or_asked": round(c.recall_or_asked, 4), "asked_benign": round(c.asked_rate, 4),
            "recall_lexicon": round(c.lexicon_recall, 4), "fpr_lexicon": round(c.lexicon_fpr, 4),
            "doubted": c.doubted,
        }  # fmt: skip
    return out


def record_first_run(name: str, ev: Evaluation, path: Path = FIRST_RUNS) -> None:
    """Keep a round's first, unseen figure; refuses to overwrite one already recorded."""
    runs: dict[str, object] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if name in runs:
        raise SystemExit(f"{path.name}: round {name!r} already has its first run; not replaced")
    runs[name] = {"date": time.strftime("%Y-%m-%d"), **summary(ev)}
    path.write_text(json.dumps(runs, ensure_ascii=False, indent=1) + "\n", "utf-8")


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_table(ev: Evaluation) -> str:
    """The confusion table, per language and overall, and per-flag recall, as text."""
    lines = [
        "language   TP   FN   FP   TN   recall     FPR  same flag  +asked recall  asked benign"
        "  | lexicon alone: recall     FPR  doubted",
    ]
    for name, c in [*ev.by_lang.items(), ("overall", ev.overall)]:
        lines.append(
            f"{name:<8} {c.tp:4} {c.fn:4} {c.fp:4} {c.tn:4}  {_pct(c.recall)}  {_pct(c.fpr)}"
            f"     {_pct(c.flag_match)}         {_pct(c.recall_or_asked)}        "
            f"{_pct(c.asked_rate)}  |                {_pct(c.lexicon_recall)}  "
            f"{_pct(c.lexicon_fpr)}  {c.doubted:7}"
        )
    lines.append(
        "(recall/FPR: emergency instructions sent; +asked: the misses met with 'is this an "
        "emergency?' and the emergency number instead — the model's second opinion or a "
        "lexicon hit it doubts; lexicon alone: before the model's doubt, as rounds 01-05 "
        "were measured)"
    )
    lines.append("")
    lines.append("flag                    phrases  recall  same flag")
    for fid, c in ev.by_flag.items():
        lines.append(f"{fid:<22} {c.tp + c.fn:8}  {_pct(c.recall)}  {_pct(c.flag_match)}")
    for title, rows in (
        ("missed", ev.misses),
        ("false alarms", ev.false_alarms),
        ("detected as another flag", ev.other_flag),
    ):
        if rows:
            lines.append("")
            lines.append(f"{title}:")
            for phrase, hit in rows:
                got = f"{hit.flag} ({hit.language})" if hit else "nothing"
                lines.append(f"  [{phrase.lang}] {phrase.label} -> {got}: {phrase.text}")
    return "\n".join(lines)


def _per_message(text: str) -> None:
    """What every patient message costs: the lexicon, then the model (its second opinion on
    no hit, its doubt on a hit)."""
    answer(text)


def _timings_us(
    texts: Sequence[str], repeat: int, fn: Callable[[str], object] = redflags.detect
) -> tuple[float, float]:
    """(p50, p99) of ``fn`` per message, in microseconds."""
    per_call: list[float] = []
    for _ in range(repeat):
        for text in texts:
            t0 = time.perf_counter()
            fn(text)
            per_call.append(time.perf_counter() - t0)
    cuts = statistics.quantiles(per_call, n=100)
    return statistics.median(per_call) * 1e6, cuts[98] * 1e6


def long_paragraphs(size: int = 4096) -> dict[str, str]:
    """Long inputs: ordinary prose in each language, and inputs built to provoke backtracking."""

    def fill(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    return {
        "en prose": fill(
            "I have had a cough and a runny nose since Monday, no fever, and I would like to "
            "book a visit next week because my chest feels a bit sore when I cough. "
        ),
        "zh prose": fill(
            "我这几天有点咳嗽流鼻涕，没有发烧，想下周预约一下，咳嗽的时候胸口有点不舒服。"
        ),
        "ru prose": fill(
            "Уже неделю кашель и насморк, температуры нет, хочу записаться на следующую неделю. "
        ),
        "one long word": "a" * size,
        "repeated cue": fill("no chest "),
        "zh repeated": fill("不胸"),
        "ru repeated": fill("не боль "),
        "mixed symbols": fill("?!.,;'-% \u200f ё 胸 x"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table, timings and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unseen", type=Path, help="a new round's file, measured on its own")
    ap.add_argument("--record", metavar="ROUND", help="with --unseen: keep this first figure")
    ap.add_argument("--repeat", type=int, default=5, help="timing passes over the phrase set")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    redflags.validate()
    load_s = time.perf_counter() - t0
    if args.unseen is not None:
        new = evaluate(load_phrases(args.unseen))
        print(f"== unseen: {args.unseen.name} ==")
        print(format_table(new))
        if args.record:
            record_first_run(args.record, new)
        print(json.dumps({"unseen": summary(new)}, ensure_ascii=False))
        return 0
    rounds = round_files()
    latest_ev = None
    if rounds:
        latest_ev = evaluate(load_phrases(rounds[-1]))
        print(f"== latest round: {rounds[-1].name} (now, after merging) ==")
        print(format_table(latest_ev))
        print()
    phrases = whole_set()
    ev = evaluate(phrases)
    print(f"== whole set: {len(phrases)} phrases ==")
    print(format_table(ev))
    if FIRST_RUNS.exists():
        print()
        print("first, unseen run of each round (recall / FPR per language):")
        for name, run in json.loads(FIRST_RUNS.read_text("utf-8")).items():
            cells = "  ".join(
                f"{lang} {100 * run[lang]['recall']:.1f}% / {100 * run[lang]['fpr']:.1f}%"
                for lang in (*redflags.LANGUAGES, "overall")
            )
            print(f"  {name} ({run['date']}): {cells}")

    texts = [p.text for p in phrases]
    median_us, p99_us = _timings_us(texts, args.repeat)
    msg_median_us, msg_p99_us = _timings_us(texts, args.repeat, _per_message)
    long_ms: dict[str, float] = {}
    for name, text in long_paragraphs().items():
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            _per_message(text)
            runs.append(time.perf_counter() - t)
        long_ms[name] = min(runs) * 1e3
    print()
    print(f"load + compile: {load_s * 1e3:.0f} ms")
    print(
        f"detect(): p50 {median_us:.0f} µs, p99 {p99_us:.0f} µs per phrase "
        f"({len(texts)} phrases x {args.repeat})"
    )
    print(
        "per message (detect() + the model: its doubt on a hit, its second opinion on none): "
        f"p50 {msg_median_us:.0f} µs, "
        f"p99 {msg_p99_us:.0f} µs"
    )
    for name, ms in long_ms.items():
        print(f"per message, a 4,096-character input ({name}): {ms:.1f} ms")
    o = ev.overall
    result = {
        "phrases": len(phrases),
        "tp": o.tp,
        "fn": o.fn,
        "fp": o.fp,
        "tn": o.tn,
        "recall": round(o.recall, 4),
        "fpr": round(o.fpr, 4),
        "same_flag": round(o.flag_match, 4),
        "by_lang": {
            k: {"tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn} for k, c in ev.by_lang.items()
        },
        "latest_round": summary(latest_ev) if latest_ev is not None else None,
        "median_us": round(median_us, 1),
        "p99_us": round(p99_us, 1),
        "message_p99_us": round(msg_p99_us, 1),
        "long_4096_max_ms": round(max(long_ms.values()), 2),
        "load_ms": round(load_s * 1e3, 1),
        "python": platform.python_version(),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
