"""The pieces of services/common/anchoring.py that need no server: where checkpoints are due, what a
signature covers, and what counts as a published head."""

import json
from pathlib import Path

import pytest

from services.common.anchoring import Anchors, Cadence, ChainCheck, Checkpoint, Claim
from services.common.signing import Keyring, Signer

MINUTE_US = 60_000_000


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    Signer.generate(tmp_path / "key.pem")
    return Signer.from_file(tmp_path / "key.pem")


def test_a_checkpoint_is_due_every_n_entries_and_m_minutes_after_the_last() -> None:
    cadence = Cadence.of(100, 5)
    assert cadence == Cadence(100, 300)
    assert cadence.due(200, 0, None) == "every 100 entries"
    assert cadence.due(201, 10 * MINUTE_US, None) is None  # no checkpoint known yet: the time rule waits
    assert cadence.due(201, 5 * MINUTE_US, 0) == "5 min after the previous checkpoint"
    assert cadence.due(201, 5 * MINUTE_US - 1, 0) is None
    assert Cadence(100, 0).due(201, 10**12, 0) is None  # the legacy checkpoints had no time rule


def test_the_signature_covers_chain_seq_hash_time_and_cadence(signer: Signer) -> None:
    keyring = signer.keyring()
    checkpoint = Checkpoint.sign(signer, "audit", 42, "a" * 64, 1_000, Cadence(100, 300))
    assert checkpoint.problem(keyring) is None
    assert Checkpoint.from_json(json.loads(json.dumps(checkpoint.to_json()))) == checkpoint
    for changed in (
        {"chain": "register"},  # replayed onto another chain
        {"seq": 43},
        {"entry_hash": "b" * 64},
        {"signed_us": 999},  # made to look older, to hide a missing checkpoint of the time rule
        {"every_entries": 1_000_000},  # made to need fewer checkpoints
    ):
        forged = Checkpoint.from_json(checkpoint.to_json() | changed)
        assert forged.problem(keyring) == "does not match its signature", changed
    # A legacy checkpoint signs "seq:hash"; a current one turned legacy does not verify either way.
    assert Checkpoint.from_json(checkpoint.to_json() | {"legacy": True}).problem(keyring) is not None


def test_a_key_outside_the_keyring_is_refused_even_named(signer: Signer, tmp_path: Path) -> None:
    Signer.generate(tmp_path / "other.pem")
    other = Signer.from_file(tmp_path / "other.pem")
    checkpoint = Checkpoint.sign(other, "audit", 1, "a" * 64, 0, Cadence(100, 300))
    assert checkpoint.problem(signer.keyring()) == "is signed by a key the deployment does not trust"
    assert checkpoint.problem(Keyring([signer.public_pem(), other.public_pem()])) is None


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"chain": "audit"},
        {
            "chain": "audit",
            "seq": "1",
            "entry_hash": "",
            "signature": "",
            "key_fingerprint": "",
            "signed_us": 0,
            "every_entries": 1,
            "every_s": 1,
        },
        [],
    ],
)
def test_anything_else_is_not_a_checkpoint(document: object) -> None:
    with pytest.raises(ValueError):
        Checkpoint.from_json(document)  # type: ignore[arg-type]


def test_a_published_head_must_say_what_its_name_says(signer: Signer) -> None:
    genuine = Checkpoint.sign(signer, "audit", 10, "a" * 64, 0, Cadence(10, 300))
    statement = json.dumps(genuine.to_json()).encode()
    anchors = Anchors(
        "audit",
        [
            Claim(10, "a" * 64, "audit/10-a", (statement,)),
            Claim(20, "a" * 64, "audit/20-a", (statement,)),  # a genuine statement under another name
            Claim(30, "c" * 64, "audit/30-c", (b"not json",)),
        ],
        lambda claim: [],
    )
    keyring = signer.keyring()
    assert anchors.signed(anchors.at(10)[0], keyring) == genuine
    assert anchors.signed(anchors.at(20)[0], keyring) is None
    assert anchors.signed(anchors.at(30)[0], keyring) is None
    assert anchors.foreign == ["audit/20-a", "audit/30-c"]


def test_the_walk_names_the_first_entry_no_longer_vouched_for(signer: Signer) -> None:
    cadence = Cadence(10, 300)
    hashes = {seq: f"{seq:064x}" for seq in range(1, 26)}
    signed = {seq: Checkpoint.sign(signer, "audit", seq, hashes[seq], 0, cadence) for seq in (10, 20)}
    check = ChainCheck("audit", signer.keyring(), cadence, signed)
    assert all(check.entry(seq, hashes[seq], 0) is None for seq in range(1, 26))
    verdict = check.finish(25)
    assert verdict.ok and verdict.signed_through == 20 and verdict.entries == 25
    # The checkpoint at 20 deleted: entries after the one at 10 are no longer vouched for.
    check = ChainCheck("audit", signer.keyring(), cadence, {10: signed[10]})
    verdicts = [check.entry(seq, hashes[seq], 0) for seq in range(1, 21)]
    assert verdicts[-1] is not None and verdicts[-1].first_bad_seq == 11
    assert "the checkpoint due at entry 20 (every 10 entries) is missing" in (verdicts[-1].problem or "")
    # A checkpoint past the end of the chain: its entries were removed.
    check = ChainCheck("audit", signer.keyring(), cadence, signed)
    assert all(check.entry(seq, hashes[seq], 0) is None for seq in range(1, 16))
    verdict = check.finish(15)
    assert not verdict.ok and verdict.first_bad_seq == 16 and "entries were removed" in (verdict.problem or "")
