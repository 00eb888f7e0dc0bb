"""The second-opinion model: shipped weights that match the data they name, sensible scores,
and any input handled."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import redflag_model
from flows.redflag_model import ROOT, ModelError, load, training_files


def test_weights_were_trained_on_the_current_phrase_sets() -> None:
    """Merging a round without retraining fails here: run `python -m flows.redflag_model`."""
    meta = load().meta
    named = {str(p.relative_to(ROOT)) for p in training_files()}
    assert set(meta["trained_on"]) == named
    for rel, sha in meta["trained_on"].items():
        assert hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() == sha, rel
    assert 0.5 <= meta["threshold"] < 1


@pytest.mark.parametrize(
    "text",
    [
        "my husband collapsed and he is not breathing",
        "у мамы перекосило лицо и она не может говорить",
        "孩子抽搐了，叫他也没反应",
    ],
)
def test_emergencies_score_high(text: str) -> None:
    assert redflag_model.probability(text) >= load().threshold


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to renew my blood pressure prescription",
        "болит горло третий день, температуры нет",
        "有点咳嗽，想问问吃什么药",
        "hello",
        # too short to judge: the lexicon and the intake's own rules answer these
        "eleven",
        "help",
        "pain",
    ],
)
def test_ordinary_messages_score_low(text: str) -> None:
    assert not redflag_model.possible(text)


def test_long_messages_are_read_in_windows() -> None:
    """An emergency at the end of a long, ordinary message is not averaged away."""
    filler = "I had a cold last week and I am feeling better now. " * 60
    text = filler + "Now my father collapsed and is not breathing."
    assert len(text) > 3000
    assert redflag_model.probability(text) >= load().threshold


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_probability(text: str) -> None:
    p = redflag_model.probability(text)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize("text", ["", "   ", "😭" * 4096, "a" * 10_000, "(" * 4096])
def test_degenerate_inputs(text: str) -> None:
    assert 0.0 <= redflag_model.probability(text) <= 1.0


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.json\.gz"):
        load(tmp_path / "nope.json.gz")
    broken = tmp_path / "broken.json.gz"
    with gzip.open(broken, "wt") as fh:
        fh.write('{"weights": {}}')
    with pytest.raises(ModelError, match=r"broken\.json\.gz"):
        load(broken)


def test_the_model_doubts_scary_words_in_harmless_messages_not_emergencies() -> None:
    """``doubts``: a lexicon hit the model finds very unlikely is asked about instead."""
    assert 0 < load().doubt < load().threshold
    assert redflag_model.doubts(
        "my nan talks a bit muddled when shes tired but the GP said thats her normal"
    )
    for text in (
        "my husband collapsed and he is not breathing",
        "у мамы перекосило лицо и она не может говорить",
        "孩子抽搐了，叫他也没反应",
    ):
        assert not redflag_model.doubts(text), text
    # Too short for the model to mean anything: never doubted.
    assert not redflag_model.doubts("blue lips")


def test_self_harm_and_chest_pain_are_never_doubted() -> None:
    from flows.redflags import registry

    reg = registry()
    assert not reg["self_harm"].doubtable and not reg["chest_pain"].doubtable
    assert reg["breathing"].doubtable
