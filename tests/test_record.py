import json

import pytest
from synthetic_runs import V1_RUN

from edgebench.agent.record import SCHEMA_VERSION, Record, RecordError, error_record
from edgebench.agent.stats import summarize

ART = {"name": "m.onnx", "sha256": "ab" * 32}


def ok_record(samples=(1_000_000, 1_100_000, 900_000)):
    return Record(
        status="ok", device="local", artifact=ART, samples_ns=samples, stats=summarize(samples)
    )


def test_round_trip_keeps_every_field():
    rec = ok_record()
    again = Record.from_dict(rec.to_dict())
    assert again == rec
    assert again.to_dict()["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("samples", [(0,), (-5, 10), (1.5,), ()])
def test_ok_record_rejects_non_positive_or_missing_latency(samples):
    with pytest.raises(RecordError):
        Record(
            status="ok", device="local", artifact=ART, samples_ns=samples, stats={"n": len(samples)}
        )


def test_stats_must_describe_the_samples():
    with pytest.raises(RecordError, match="stats.n"):
        Record(status="ok", device="local", artifact=ART, samples_ns=(5, 6), stats=summarize([5]))


def test_error_record_needs_known_reason_and_no_latency():
    with pytest.raises(RecordError, match="reason code"):
        error_record("local", ART, "it-broke", "boom")
    with pytest.raises(RecordError, match="cannot carry"):
        Record(
            status="error",
            device="local",
            artifact=ART,
            reason="crash",
            message="x",
            samples_ns=(5,),
        )
    rec = error_record("local", ART, "crash", "killed\nby SIGSEGV")
    assert rec.message == "killed by SIGSEGV" and rec.fault_class == "infrastructure"


def test_newer_schema_and_unknown_fields_are_refused():
    data = ok_record().to_dict()
    with pytest.raises(RecordError, match="schema_version"):
        Record.from_dict(dict(data, schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(RecordError, match="unknown record fields: extra"):
        Record.from_dict(dict(data, extra=1))


def test_a_v1_record_loads_with_its_validity_verdict_moved_out_of_the_fingerprint():
    path = V1_RUN / "raw" / "local" / "digits.tflite.json"
    v1 = json.loads(path.read_text())
    rec = Record.from_dict(v1)
    assert rec.schema_version == SCHEMA_VERSION == 2
    assert rec.validity == v1["fingerprint"]["validity"] and rec.validity["flags"] == ["throttled"]
    assert "validity" not in rec.fingerprint
    assert rec.fingerprint == {k: v for k, v in v1["fingerprint"].items() if k != "validity"}
    assert rec.samples_ns == tuple(v1["samples_ns"]) and rec.stats == v1["stats"]
    assert Record.from_dict(rec.to_dict()) == rec  # written back as version 2


def test_a_record_is_checked_field_by_field_in_every_version():
    v1 = json.loads((V1_RUN / "raw" / "local" / "digits.onnx.json").read_text())
    v1["fingerprint"]["validity"]["flags"] = "throttled"
    with pytest.raises(RecordError, match=r"^validity\.flags: expected a list, got 'throttled'$"):
        Record.from_dict(v1)


def test_record_is_immutable_and_owns_its_data():
    artifact = dict(ART)
    rec = Record(status="ok", device="d", artifact=artifact, samples_ns=[7], stats=summarize([7]))
    artifact["name"] = "changed"
    assert rec.artifact["name"] == "m.onnx"
    with pytest.raises(AttributeError):
        rec.status = "error"  # type: ignore[misc]
