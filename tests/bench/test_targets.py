"""The bench's verdicts: a failed run must never read as a hit."""

from bench.targets import evaluate


def _s4_verdict(result: dict[str, object]) -> dict[str, object]:
    return next(v for v in evaluate({"s4": {"status": "ok", **result}}) if v["scenario"] == "s4")


def test_a_broadcast_answered_with_an_error_is_a_miss_however_fast_it_failed() -> None:
    failed = _s4_verdict({"broadcast_failure": "503 storage_unavailable", "people_per_s": None,
                          "people_per_s_at_most": 495_455.0})
    assert failed["hit"] is False


def test_a_queued_broadcast_is_judged_on_its_rate() -> None:
    assert _s4_verdict({"broadcast_failure": None, "people_per_s": 120_000.0})["hit"] is True
    assert _s4_verdict({"broadcast_failure": None, "people_per_s": 76_639.0})["hit"] is False
