"""The signing key's rotation and keyring, on real files: the new key written atomically with mode
0600, the old public key kept and the old private key nowhere, verification by the fingerprint or
public key recorded with a signature, and a key outside the keyring refused."""

import stat
from pathlib import Path

import pytest

from services.common import signing
from services.common.signing import Keyring, Signer, SigningKeyError


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "signing.pem"
    Signer.generate(path)
    return path


def test_rotation_keeps_the_old_public_key_and_no_private_one(key_file: Path) -> None:
    old = Signer.from_file(key_file)
    old_private = key_file.read_bytes()
    signed_before = old.sign(b"register entry 1")

    rotation = signing.rotate(key_file)

    new = Signer.from_file(key_file)
    assert rotation.old_fingerprint == old.fingerprint != rotation.new_fingerprint == new.fingerprint
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert rotation.retired_file == key_file.parent / "signing.pem.retired" / f"{old.fingerprint}.pub.pem"
    assert rotation.retired_file.read_text() == old.public_pem()
    # No copy of the old private key, and no temporary file, is left anywhere next to the key.
    leftovers = [p for p in key_file.parent.rglob("*") if p.is_file()]
    assert sorted(p.name for p in leftovers) == sorted(["signing.pem", f"{old.fingerprint}.pub.pem"])
    assert all(old_private not in p.read_bytes() for p in leftovers)

    keyring = signing.trusted_public_keys(key_file)
    assert keyring.current_fingerprint == new.fingerprint
    assert keyring.fingerprints == sorted([old.fingerprint, new.fingerprint])
    signed_after = new.sign(b"register entry 2")
    assert keyring.verify(b"register entry 1", signed_before, key_fingerprint=old.fingerprint)
    assert keyring.verify(b"register entry 2", signed_after, key_fingerprint=new.fingerprint)
    assert keyring.verify(b"register entry 1", signed_before, public_key_pem=old.public_pem())
    assert keyring.verify(b"register entry 1", signed_before)  # nothing recorded: any trusted key
    # The right key for the wrong bytes, or another trusted key than the one recorded: refused.
    assert not keyring.verify(b"register entry 3", signed_before, key_fingerprint=old.fingerprint)
    assert not keyring.verify(b"register entry 1", signed_before, key_fingerprint=new.fingerprint)

    # A second rotation keeps both earlier keys.
    signing.rotate(key_file)
    assert len(signing.trusted_public_keys(key_file).fingerprints) == 3


def test_a_key_outside_the_keyring_is_refused(key_file: Path, tmp_path: Path) -> None:
    Signer.generate(tmp_path / "forger.pem")
    forger = Signer.from_file(tmp_path / "forger.pem")
    keyring = signing.trusted_public_keys(key_file)
    forged = forger.sign(b"statement")
    # The forger's own public key stored next to the forgery does not make it trusted.
    assert not keyring.trusts(forger.public_pem())
    assert not keyring.verify(b"statement", forged, public_key_pem=forger.public_pem())
    assert not keyring.verify(b"statement", forged, key_fingerprint=forger.fingerprint)
    assert not keyring.verify(b"statement", forged)
    assert not keyring.verify(b"statement", forged, public_key_pem="not a key")
    # One key given as PEM (callers that trust a single key) behaves the same.
    assert not Keyring.of(Signer.from_file(key_file).public_pem()).verify(b"statement", forged)


def test_a_running_signer_sees_the_rotation(key_file: Path) -> None:
    running = Signer.from_file(key_file)  # a service started before the rotation
    assert running.keyring().fingerprints == [running.fingerprint]
    signing.rotate(key_file)
    rotated = Signer.from_file(key_file)  # a replica restarted after it
    signature = rotated.sign(b"checkpoint")
    # Without a restart the old process trusts the new key (it re-reads the changed files) and
    # still signs with its own, which stays trusted as a retired key.
    assert running.keyring().verify(b"checkpoint", signature, key_fingerprint=rotated.fingerprint)
    assert rotated.keyring().verify(b"old", running.sign(b"old"), public_key_pem=running.public_pem())
    assert running.keyring().current_fingerprint == running.fingerprint


def test_unreadable_keys_are_errors_not_silence(key_file: Path, tmp_path: Path) -> None:
    signing.rotate(key_file)
    retired = next(signing.retired_dir(key_file).glob("*.pub.pem"))
    retired.write_text("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SigningKeyError, match="retired public key"):
        signing.trusted_public_keys(key_file)
    with pytest.raises(SigningKeyError, match="not set"):
        signing.trusted_public_keys(None)
    with pytest.raises(SigningKeyError):
        signing.rotate(tmp_path / "missing.pem")
    assert not (tmp_path / "missing.pem.retired").exists()
