"""Free-text understanding: how often a typed complaint pre-fills the intake correctly.

    python -m benchmarks.understand [--repeat 5]
    python -m benchmarks.understand --unseen NEW.tsv --record prefill-04   # a new round

The set is every ``tests/data/understand_rounds/prefill-NN.tsv`` (columns ``lang``,
``category``, ``onset``, ``severity``, ``text``; onset and severity empty when the message does
not say them). Each round was written from a brief that names only the categories, the duration
bands and the 0-10 scale, measured once before anyone looked at it (the first figure is kept in
``first_runs.json``, never overwritten), and only then merged.

Per language and overall it prints:

- category: understand() names the labelled category (the intake's first question skipped
  with the right answer); "wrong" is a different category, "none" is no category at all;
- onset: of the messages that state how long, the share read as the labelled band; "invented"
  counts messages that state no duration but got one;
- severity: of the messages that state a 0-10 number, the share read as that number;
  "invented" as above;
- health: the share of messages recognised as health-related at all (the rest would be
  answered with the safety question rather than the intake; never "I didn't understand").

Then understand()'s p50/p99 time per message. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flows import understand

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = ROOT / "tests" / "data" / "understand_rounds"
FIRST_RUNS = ROUNDS / "first_runs.json"
LANGS = ("en", "zh_Hans", "ru")


@dataclass(frozen=True)
class Typed:
    """One labelled complaint."""

    lang: str
    category: str
    onset: str | None
    severity: int | None
    text: str


@dataclass
class Score:
    """Counts for one language (or overall)."""

    n: int = 0
    cat_ok: int = 0
    cat_wrong: int = 0
    cat_none: int = 0
    onset_n: int = 0
    onset_ok: int = 0
    onset_invented: int = 0
    sev_n: int = 0
    sev_ok: int = 0
    sev_invented: int = 0
    health: int = 0
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)

    @staticmethod
    def _share(a: int, b: int) -> float:
        return a / b if b else 0.0

    @property
    def category(self) -> float:
        return self._share(self.cat_ok, self.n)

    @property
    def onset(self) -> float:
        return self._share(self.onset_ok, self.onset_n)

    @property
    def severity(self) -> float:
        return self._share(self.sev_ok, self.sev_n)

    @property
    def health_share(self) -> float:
        return self._share(self.health, self.n)

    def summary(self) -> dict[str, object]:
        return {
            "n": self.n,
            "category": round(self.category, 4),
            "category_wrong": self.cat_wrong,
            "category_none": self.cat_none,
            "onset_stated": self.onset_n,
            "onset": round(self.onset, 4),
            "onset_invented": self.onset_invented,
            "severity_stated": self.sev_n,
            "severity": round(self.severity, 4),
            "severity_invented": self.sev_invented,
            "health": round(self.health_share, 4),
        }


def load(path: Path) -> list[Typed]:
    """Read one round's TSV; raises ValueError naming the line on a bad label."""
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            cat, onset, sev = row["category"], row["onset"] or None, row["severity"] or None
            if row["lang"] not in LANGS or cat not in understand.CATEGORY_IDS:
                raise ValueError(f"{path.name}:{i}: bad language or category")
            if onset is not None and onset not in understand.DURATION_IDS:
                raise ValueError(f"{path.name}:{i}: bad onset {onset!r}")
            out.append(Typed(row["lang"], cat, onset, int(sev) if sev else None, row["text"]))
    return out


def round_files(folder: Path = ROUNDS) -> list[Path]:
    """The merged rounds, oldest first."""
    return sorted(folder.glob("prefill-*.tsv"))


def evaluate(items: Iterable[Typed]) -> dict[str, Score]:
    """Scores per language and "overall"."""
    scores: dict[str, Score] = defaultdict(Score)
    for t in items:
        got = understand.understand(t.text)
        health = got.category is not None or understand.health_related(t.text)
        for s in (scores[t.lang], scores["overall"]):
            s.n += 1
            s.health += health
            if got.category == t.category:
                s.cat_ok += 1
            elif got.category is None:
                s.cat_none += 1
            else:
                s.cat_wrong += 1
                s.confusions[(t.category, got.category)] += 1
            if t.onset is not None:
                s.onset_n += 1
                s.onset_ok += got.duration == t.onset
            elif got.duration is not None:
                s.onset_invented += 1
            if t.severity is not None:
                s.sev_n += 1
                s.sev_ok += got.severity == t.severity
            elif got.severity is not None:
                s.sev_invented += 1
    return dict(scores)


def misses(items: Iterable[Typed], limit: int = 40) -> list[str]:
    """Lines describing the messages read wrongly (category, onset or severity)."""
    out = []
    for t in items:
        got = understand.understand(t.text)
        wrong = []
        if got.category != t.category:
            wrong.append(f"category {got.category} (want {t.category})")
        if t.onset is not None and got.duration != t.onset:
            wrong.append(f"onset {got.duration} (want {t.onset})")
        if t.severity is not None and got.severity != t.severity:
            wrong.append(f"severity {got.severity} (want {t.severity})")
        if wrong:
            out.append(f"  [{t.lang}] {t.text[:90]!r}: {'; '.join(wrong)}")
    return out[:limit]


def format_table(scores: dict[str, Score]) -> str:
    """One line per language and overall."""
    lines = [
        "language     n  category (wrong/none)   onset stated  (invented)"
        "   severity stated (invented)   health"
    ]
    for name in (*LANGS, "overall"):
        s = scores.get(name)
        if s is None:
            continue
        lines.append(
            f"{name:<9}{s.n:5}  {100 * s.category:6.1f}% ({s.cat_wrong:3}/{s.cat_none:3})"
            f"   {100 * s.onset:6.1f}% of {s.onset_n:3} ({s.onset_invented:3})"
            f"   {100 * s.severity:6.1f}% of {s.sev_n:3} ({s.sev_invented:3})"
            f"   {100 * s.health_share:5.1f}%"
        )
    return "\n".join(lines)


def record_first_run(name: str, scores: dict[str, Score], path: Path = FIRST_RUNS) -> None:
    """Keep a round's first, unseen figure; refuses to overwrite one already recorded."""
    runs: dict[str, object] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if name in runs:
        raise SystemExit(f"{path.name}: round {name!r} already has its first run; not replaced")
    runs[name] = {"date": time.strftime("%Y-%m-%d")} | {k: v.summary() for k, v in scores.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, ensure_ascii=False, indent=1) + "\n", "utf-8")


def _timings_us(texts: Sequence[str], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        for text in texts:
            t = time.perf_counter()
            understand.understand(text)
            samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table, timings and the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unseen", type=Path, help="a new round's file, measured on its own")
    ap.add_argument("--record", metavar="ROUND", help="with --unseen: keep this first figure")
    ap.add_argument("--repeat", type=int, default=5, help="timing passes over the set")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    understand.validate()
    load_ms = (time.perf_counter() - t0) * 1e3
    if args.unseen is not None:
        scores = evaluate(load(args.unseen))
        print(f"== unseen: {args.unseen.name} ==")
        print(format_table(scores))
        if args.record:
            record_first_run(args.record, scores)
        print(json.dumps({"unseen": {k: v.summary() for k, v in scores.items()}}))
        return 0
    items = [t for path in round_files() for t in load(path)]
    if not items:
        raise SystemExit(f"no prefill-NN.tsv in {ROUNDS}")
    scores = evaluate(items)
    print(f"== whole set: {len(items)} typed complaints ==")
    print(format_table(scores))
    wrong = misses(items)
    if wrong:
        print("\nread wrongly (first 40):")
        print("\n".join(wrong))
    if FIRST_RUNS.exists():
        print("\nfirst, unseen run of each round (category / onset / severity, overall):")
        for name, run in json.loads(FIRST_RUNS.read_text("utf-8")).items():
            o = run["overall"]
            print(
                f"  {name} ({run['date']}): {100 * o['category']:.1f}% / "
                f"{100 * o['onset']:.1f}% / {100 * o['severity']:.1f}%"
            )
    median_us, p99_us = _timings_us([t.text for t in items], args.repeat)
    print(f"\nload + compile: {load_ms:.0f} ms")
    print(f"understand(): p50 {median_us:.0f} µs, p99 {p99_us:.0f} µs per message")
    result = {k: v.summary() for k, v in scores.items()} | {
        "median_us": round(median_us, 1),
        "p99_us": round(p99_us, 1),
        "load_ms": round(load_ms, 1),
        "python": platform.python_version(),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
