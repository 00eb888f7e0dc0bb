"""Phone and video consultations, pure parts: room names nobody can guess, participants'
tokens that Jitsi's check accepts (and a forged or re-signed one it refuses), and which
number a doctor is shown (the patient's by consent; in cn only the masked number)."""

from __future__ import annotations

from datetime import UTC, datetime

from flows import calls

START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
END = datetime(2027, 3, 1, 9, 20, tzinfo=UTC)


def test_room_names_cannot_be_guessed() -> None:
    names = {calls.room_name() for _ in range(500)}
    assert len(names) == 500
    assert all(n.startswith("careline") and len(n) == len("careline") + 32 for n in names)
    assert all(n.isalnum() for n in names)


def _token(**overrides: object) -> str:
    args: dict[str, object] = {
        "app_id": "careline",
        "secret": "s3cret",
        "server_url": "https://meet.clinic.example",
        "room": "careline0123",
        "name": "Dr Mira Holt",
        "moderator": True,
        "start": START,
        "end": END,
    }
    args.update(overrides)
    return calls.jitsi_token(**args)  # type: ignore[arg-type]


def test_a_token_carries_the_room_the_window_and_the_role() -> None:
    claims = calls.read_token(_token(), "s3cret")
    assert claims is not None
    assert claims["aud"] == "jitsi" and claims["iss"] == "careline"
    assert claims["sub"] == "meet.clinic.example" and claims["room"] == "careline0123"
    assert claims["nbf"] == int((START - calls.TOKEN_EARLY).timestamp())
    assert claims["exp"] == int((END + calls.TOKEN_LATE).timestamp())
    assert claims["context"]["user"] == {"name": "Dr Mira Holt", "moderator": True}
    patient = calls.read_token(_token(name="Alice", moderator=False), "s3cret")
    assert patient is not None and patient["moderator"] is False


def test_forged_tokens_are_refused() -> None:
    good = _token()
    head, body, sig = good.split(".")
    assert calls.read_token(good, "another secret") is None
    other = _token(room="careline9999").split(".")[1]
    assert calls.read_token(f"{head}.{other}.{sig}", "s3cret") is None  # room swapped
    assert calls.read_token(f"{head}.{body}.", "s3cret") is None
    assert calls.read_token("not a token", "s3cret") is None


def test_room_links() -> None:
    assert calls.room_url("https://meet.clinic.example/", "r1") == "https://meet.clinic.example/r1"
    assert calls.room_url("https://m.example", "r1", "T") == "https://m.example/r1?jwt=T"


def test_which_number_the_doctor_sees() -> None:
    masker = calls.StaticMasker("+86 700 1234 5678")
    assert calls.number_for_doctor("generic", "b1", "+15550100777", None) == "+15550100777"
    assert calls.number_for_doctor("generic", "b1", None, masker) is None  # no consent
    # cn: the masked number, never the patient's own; with no masker, nothing.
    assert calls.number_for_doctor("cn", "b1", "+8613800000000", masker) == "+86 700 1234 5678"
    assert masker.bound == {"b1": "+8613800000000"}
    assert calls.number_for_doctor("cn", "b2", "+8613800000000", None) is None
    masker.release("b1")
    assert masker.bound == {}
