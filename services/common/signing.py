"""The deployment's Ed25519 signing key: register entries, export manifests, audit checkpoints.

Read from the PEM file CSU_SIGNING_KEY_FILE (a Kubernetes Secret in production). There is never a
built-in default key (Kerberos Vault shipped one; anyone could forge its signatures): without the
file, services that sign refuse to start. `make run` generates a key in its data folder on first
start and says so.

Rotation (`csuctl keys rotate`, `rotate` below). The new private key replaces the key file (a
temporary file renamed over it, mode 0600, same owner); the old *public* key goes to the keyring
folder next to it, `<key file>.retired/<fingerprint>.pub.pem`, and the old private key is kept
nowhere. What was signed before stays verifiable: verifiers take a `Keyring` — the current key and
every retired one (`Signer.keyring()`, `trusted_public_keys()`) — and pick the key by what was
recorded with the signature: its fingerprint (register entries), its public key (audit
checkpoints, no-private-area statements; only trusted if it is in the keyring), or, with neither,
try every trusted key. A signature by a key outside the keyring is refused. The keyring folder is
as sensitive as the key file: a public key written there is trusted.

Services load the private key once, at start: after a rotation, restart every service that signs or
checks who signed (gateway, requisition, masking — masking accepts statements only from the key it
loaded), e.g. `kubectl rollout restart deployment -l app.kubernetes.io/instance=<release>` or stopping
and starting `make run`. Until then they keep signing with the old key, which the keyring still
trusts. Verifying needs no restart: `Signer.keyring()` re-reads the files when they change.
Export packages carry their own public key and are checked against the fingerprint published with
them (receipt, register), so a rotation changes nothing for packages already delivered.
"""

import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RETIRED_SUFFIX = ".retired"
RETIRED_PATTERN = "*.pub.pem"


class SigningKeyError(RuntimeError):
    """The signing key is missing or unreadable."""


class Signer:
    def __init__(self, key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = key
        self.public_key = key.public_key()
        # The file it came from: its retired keys sit next to it (see keyring()).
        self.path = path
        self._keyring: Keyring | None = None
        self._keyring_stamp: tuple[object, ...] = ()

    @classmethod
    def from_file(cls, path: Path | None) -> "Signer":
        if path is None:
            raise SigningKeyError("CSU_SIGNING_KEY_FILE is not set: this service signs and has no key")
        return cls(_load_private(Path(path)), Path(path))

    @staticmethod
    def generate(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=False)
        path.write_bytes(private_pem(Ed25519PrivateKey.generate()))

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode()

    def public_pem(self) -> str:
        return public_pem(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def keyring(self) -> "Keyring":
        """The keys to verify with: this signer's own, the key file's current one and the retired ones.

        Cached, and re-read when the key file or the keyring folder changes, so a process started
        before a rotation still verifies what the rotated key signs (other replicas restart first).
        """
        if self.path is None:
            return Keyring([], current=self.public_pem())
        stamp = (_stamp(self.path), _stamp(retired_dir(self.path)))
        if self._keyring is None or stamp != self._keyring_stamp:
            on_disk = trusted_public_keys(self.path)
            self._keyring = Keyring(on_disk.pems(), current=self.public_pem())
            self._keyring_stamp = stamp
        return self._keyring


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_public(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ValueError for anything else."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except UnsupportedAlgorithm as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey | str | bytes) -> str:
    """SHA-256 of the raw 32-byte public key, hex: what receipts, the register and csu-verify show."""
    public = key if isinstance(key, Ed25519PublicKey) else load_public(key)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def verify(public_key_pem: str | bytes, data: bytes, signature_b64: str) -> bool:
    try:
        key = load_public(public_key_pem)
    except ValueError:
        return False
    try:
        key.verify(base64.b64decode(signature_b64), data)
        return True
    except (InvalidSignature, ValueError):
        return False


class Keyring:
    """Public keys trusted to have signed for this deployment, by fingerprint."""

    def __init__(self, pems: Iterable[str], current: str | None = None) -> None:
        self._keys: dict[str, str] = {}
        for pem in pems:
            self._keys[fingerprint(pem)] = pem
        self.current_fingerprint: str | None = None
        if current is not None:
            self.current_fingerprint = fingerprint(current)
            self._keys[self.current_fingerprint] = current

    @classmethod
    def of(cls, trusted: "Keyring | str | bytes") -> "Keyring":
        """A keyring as given, or the one key given as PEM (callers that trust a single key)."""
        if isinstance(trusted, Keyring):
            return trusted
        pem = trusted.decode() if isinstance(trusted, bytes) else trusted
        return cls([], current=pem)

    @property
    def fingerprints(self) -> list[str]:
        return sorted(self._keys)

    def pems(self) -> list[str]:
        return [self._keys[fp] for fp in self.fingerprints]

    def public_key_for(self, key_fingerprint: str) -> str | None:
        return self._keys.get(key_fingerprint.strip().lower())

    def trusts(self, public_key_pem: str | bytes) -> bool:
        try:
            return fingerprint(public_key_pem) in self._keys
        except ValueError:
            return False

    def verify(self, data: bytes, signature_b64: str, *, key_fingerprint: str = "", public_key_pem: str = "") -> bool:
        """True when a trusted key signed: the one recorded with the signature (by fingerprint or as a
        public key), or, when nothing was recorded, any trusted key. A recorded key outside the
        keyring is never used, so a forger's own key stored next to the forgery does not help."""
        if not key_fingerprint and public_key_pem.strip():
            try:
                key_fingerprint = fingerprint(public_key_pem)
            except ValueError:
                return False
        if key_fingerprint:
            pem = self.public_key_for(key_fingerprint)
            return pem is not None and verify(pem, data, signature_b64)
        return any(verify(pem, data, signature_b64) for pem in self._keys.values())


def retired_dir(key_file: Path) -> Path:
    """Where the public keys of the rotated-out private keys are kept."""
    return key_file.with_name(key_file.name + RETIRED_SUFFIX)


def trusted_public_keys(key_file: Path | None) -> Keyring:
    """The key file's current public key and every retired one (CSU_SIGNING_KEY_FILE's keyring)."""
    if key_file is None:
        raise SigningKeyError("CSU_SIGNING_KEY_FILE is not set: no key to verify with")
    key_file = Path(key_file)
    current = public_pem(_load_private(key_file).public_key())
    retired: list[str] = []
    folder = retired_dir(key_file)
    if folder.is_dir():
        for path in sorted(folder.glob(RETIRED_PATTERN)):
            try:
                pem = path.read_text(encoding="ascii")
                load_public(pem)
            except (OSError, ValueError) as exc:
                # Loud rather than skipped: a lost retired key would show as forged signatures.
                raise SigningKeyError(f"cannot read the retired public key {path}: {exc}") from exc
            retired.append(pem)
    return Keyring(retired, current=current)


@dataclass(frozen=True)
class Rotation:
    old_fingerprint: str
    new_fingerprint: str
    key_file: Path
    retired_file: Path


def rotate(key_file: Path, new_key: Ed25519PrivateKey | None = None) -> Rotation:
    """Replace the private key in key_file by new_key (default: a fresh one); keep the old public key."""
    key_file = Path(key_file)
    old = Signer.from_file(key_file)
    new_key = new_key or Ed25519PrivateKey.generate()
    owner = key_file.stat()
    folder = retired_dir(key_file)
    folder.mkdir(mode=0o755, exist_ok=True)
    retired_file = folder / f"{old.fingerprint}.pub.pem"
    # The old public key is in the keyring before the old private key is gone: a crash between the
    # two leaves a key that is both current and retired, never a signature nobody can check.
    write_atomically(retired_file, old.public_pem().encode(), 0o644, owner)
    write_atomically(key_file, private_pem(new_key), 0o600, owner)
    return Rotation(old.fingerprint, fingerprint(new_key.public_key()), key_file, retired_file)


def write_atomically(path: Path, data: bytes, mode: int, owner: os.stat_result | None = None) -> None:
    """Write to a temporary file in the same folder, then rename it over path: readers see the old
    file or the new one, never half of one. The file has `mode` from its creation on, and the
    owner of `owner` (the replaced key file's) when allowed, so the service user can still read it
    after root rotated it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"cannot load the signing key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
