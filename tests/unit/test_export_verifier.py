"""csu-verify, the standalone verifier: Ed25519 from RFC 8032 in pure Python, and the package
checks, run as the recipient runs it — one file, the standard library only (python -I -S)."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import pyzipper
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from services.requisition import csu_verify

VERIFIER = Path(csu_verify.__file__)
# RFC 8032, section 7.1, tests 1-3: (public key, message, signature).
RFC8032 = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(public: str, message: str, signature: str) -> None:
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert csu_verify.ed25519_verify(key, msg, sig)
    assert not csu_verify.ed25519_verify(key, msg + b"x", sig)
    assert not csu_verify.ed25519_verify(key, msg, sig[:63] + bytes([sig[63] ^ 1]))
    assert not csu_verify.ed25519_verify(key, msg, sig[:-1])
    # S >= L (a malleable signature) is refused.
    s = int.from_bytes(sig[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    if s < 2**256:
        assert not csu_verify.ed25519_verify(key, msg, sig[:32] + s.to_bytes(32, "little"))


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200), st.binary(min_size=32, max_size=32))
def test_agrees_with_the_cryptography_library(message: bytes, seed: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = key.sign(message)
    assert csu_verify.ed25519_verify(public, message, signature)
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert not csu_verify.ed25519_verify(other, message, signature)


def _pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _fingerprint(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def make_package(folder: Path, key: Ed25519PrivateKey) -> Path:
    """A minimal package laid out like the service's (the full one is built in the integration tests)."""
    root = folder / "CSU-RQ-2026-00001"
    (root / "video").mkdir(parents=True)
    (root / "video" / "cam-1_20261125T101500Z.mp4").write_bytes(bytes(range(256)) * 40)
    (root / "README.txt").write_text("lisez-moi / read me\n", encoding="utf-8")
    (root / "public-key.pem").write_text(_pem(key))
    shutil.copyfile(VERIFIER, root / "csu-verify.py")
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files.append(
            {"path": path.relative_to(root).as_posix(), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        )
    manifest = {
        "format": "csu-export/1",
        "signing_key": {"file": "public-key.pem", "fingerprint": _fingerprint(key)},
        "request": {"number": "RQ-2026-00001", "requesting_service": "Commissariat"},
        "requisition": {"number": "REQ-1", "authority": "Procureur", "authority_kind": "magistrate"},
        "cameras": [{"id": "cam-1", "name": "Place d'Armes — nord", "parts": []}],
        "chain_of_custody": [{"at": {"utc": "2026-11-25T10:00:00Z"}, "from": "", "to": "requested", "by": "op"}],
        "files": files,
    }
    data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    (root / "manifest.json").write_bytes(data)
    (root / "manifest.sig").write_text(base64.b64encode(key.sign(data)).decode() + "\n")
    return root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """As the recipient runs it: the package's own copy, no site-packages, isolated mode."""
    return subprocess.run(
        [sys.executable, "-I", "-S", *args], capture_output=True, text=True, timeout=120, encoding="utf-8"
    )


def test_standalone_run_detects_every_kind_of_tampering(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    root = make_package(tmp_path, key)
    script = str(root / "csu-verify.py")
    fingerprint = _fingerprint(key)
    good = run(script, str(root), "--fingerprint", " ".join(fingerprint[i : i + 4] for i in range(0, 64, 4)))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "RESULT: OK" in good.stdout and "Place d'Armes — nord" in good.stdout
    grouped = " ".join(fingerprint[i : i + 4] for i in range(0, 64, 4))
    assert grouped in good.stdout  # printed prominently, for comparison

    def fails(fragment: str, *extra: str) -> None:
        result = run(script, str(root), *extra)
        assert result.returncode == 1, result.stdout
        assert fragment in result.stdout, result.stdout

    video = root / "video" / "cam-1_20261125T101500Z.mp4"
    original = video.read_bytes()
    for index in (0, len(original) // 2, len(original) - 1):
        video.write_bytes(original[:index] + bytes([original[index] ^ 0x01]) + original[index + 1 :])
        fails("changed file: video/cam-1_20261125T101500Z.mp4")
    video.write_bytes(original)
    (root / "video" / "extra.mp4").write_bytes(b"x")
    fails("added file (not in the manifest): video/extra.mp4")
    (root / "video" / "extra.mp4").unlink()
    readme = (root / "README.txt").read_bytes()
    (root / "README.txt").unlink()
    fails("missing file: README.txt")
    (root / "README.txt").write_bytes(readme)
    manifest = (root / "manifest.json").read_bytes()
    (root / "manifest.json").write_bytes(manifest.replace(b"REQ-1", b"REQ-2"))
    fails("signature of manifest.json is NOT valid")
    (root / "manifest.json").write_bytes(manifest)
    # The fingerprint or key the user gives must match.
    fails("NOT the one you gave", "--fingerprint", "00" * 32)
    other = tmp_path / "other.pem"
    other.write_text(_pem(Ed25519PrivateKey.generate()))
    fails("NOT the key you gave", "--key", str(other))

    # A forger re-signs a changed manifest with their own key and replaces public-key.pem (and
    # fixes its hash): self-consistent, so only the published fingerprint catches it.
    forger = Ed25519PrivateKey.generate()
    (root / "public-key.pem").write_text(_pem(forger))
    forged = json.loads(manifest)
    for entry in forged["files"]:
        if entry["path"] == "public-key.pem":
            data = (root / "public-key.pem").read_bytes()
            entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    forged["requisition"]["number"] = "FORGED"
    forged_bytes = json.dumps(forged, indent=2).encode()
    (root / "manifest.json").write_bytes(forged_bytes)
    (root / "manifest.sig").write_text(base64.b64encode(forger.sign(forged_bytes)).decode())
    self_signed = run(script, str(root))
    assert (
        self_signed.returncode == 0
        and fingerprint not in self_signed.stdout
        and "Compare this fingerprint" in self_signed.stdout
    )
    fails("NOT the one you gave", "--fingerprint", fingerprint)


def test_zip_input_and_encrypted_zip(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    root = make_package(tmp_path / "src", key)
    plain = tmp_path / "package.zip"
    with zipfile.ZipFile(plain, "w") as z:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            z.write(path, f"{root.name}/{path.relative_to(root).as_posix()}")
    result = run(str(VERIFIER), str(plain), "--fingerprint", _fingerprint(key), "--json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["ok"] is True
    encrypted = tmp_path / "encrypted.zip"
    with pyzipper.AESZipFile(encrypted, "w", encryption=pyzipper.WZ_AES) as z:
        z.setpassword(b"a-long-password-123")
        z.writestr(f"{root.name}/manifest.json", b"{}")
    refused = run(str(VERIFIER), str(encrypted))
    assert refused.returncode == 2 and "encrypted" in refused.stderr
    assert run(str(VERIFIER), str(tmp_path / "nothing-here")).returncode == 2


def test_fingerprint_forms() -> None:
    fp = "ab" * 32
    assert csu_verify.normalise_fingerprint("SHA256:" + ":".join(fp[i : i + 2] for i in range(0, 64, 2))) == fp
    assert csu_verify.normalise_fingerprint(" ".join(fp[i : i + 4] for i in range(0, 64, 4)).upper()) == fp
    with pytest.raises(csu_verify.VerifyError):
        csu_verify.normalise_fingerprint("abcd")


def test_csuctl_exports_verify(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.csuctl.app import app

    key = Ed25519PrivateKey.generate()
    root = make_package(tmp_path, key)
    runner = CliRunner()
    good = runner.invoke(app, ["exports", "verify", str(root), "--fingerprint", _fingerprint(key), "--json"])
    assert good.exit_code == 0, good.output
    document = json.loads(good.output)
    assert document["ok"] and document["problems"] == [] and document["request"] == "RQ-2026-00001"
    (root / "README.txt").write_text("changed")
    bad = runner.invoke(app, ["exports", "verify", str(root)])
    assert bad.exit_code == 1 and "changed file: README.txt" in bad.output
    missing = runner.invoke(app, ["exports", "verify", str(tmp_path / "absent")])
    assert missing.exit_code == 2


def _interpreters() -> list[str]:
    """Every Python 3.8+ on this machine (pyenv's, the system's): the recipient's may be any."""
    found = {sys.executable}
    for candidate in [*Path.home().glob(".pyenv/versions/3.*/bin/python3"), Path("/usr/bin/python3")]:
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info >= (3, 8))"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            found.add(str(candidate))
    return sorted(found)


def test_runs_on_every_python_from_3_8_and_on_a_legacy_console(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    root = make_package(tmp_path, key)
    for python in _interpreters():
        result = subprocess.run(
            [python, "-I", "-S", str(root / "csu-verify.py"), str(root), "--fingerprint", _fingerprint(key)],
            capture_output=True,
            timeout=120,
        )
        assert result.returncode == 0, (python, result.stdout, result.stderr)
    # A Windows console that cannot print "—" or "é" (cp437): replaced, never a crash.
    legacy = subprocess.run(
        [sys.executable, "-S", str(root / "csu-verify.py"), str(root)],
        capture_output=True,
        timeout=120,
        env={"PYTHONIOENCODING": "cp437"},
    )
    assert legacy.returncode == 0, legacy.stderr
    assert b"RESULT: OK" in legacy.stdout
