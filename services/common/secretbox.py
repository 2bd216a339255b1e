"""Encryption at rest for the few secrets the platform must keep (camera credentials, TOTP seeds).

One symmetric key (Fernet: AES-128-CBC + HMAC-SHA256) read from the file CSU_SECRETS_KEY_FILE,
mounted from a Kubernetes Secret in production. There is no built-in key: without the file the
services that need it refuse to start; `make run` generates one in its data folder on first start.
"""

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBoxError(RuntimeError):
    """The key is missing or a value cannot be decrypted with it."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_file(cls, path: Path | None) -> "SecretBox":
        if path is None:
            raise SecretBoxError("CSU_SECRETS_KEY_FILE is not set: secrets cannot be stored")
        try:
            return cls(Path(path).read_bytes().strip())
        except (OSError, ValueError) as exc:
            raise SecretBoxError(f"cannot load the secrets key from {path}: {exc}") from exc

    @staticmethod
    def generate(path: Path) -> None:
        """Write a new key, readable by the owner only (first start of `make run`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=False)
        path.write_bytes(Fernet.generate_key())

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError("a stored secret cannot be decrypted with the configured key") from exc

    def seal_bytes(self, plaintext: bytes) -> bytes:
        """Encrypt a document (requisition scans, identity copies) for the object store."""
        return self._fernet.encrypt(plaintext)

    def open_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise SecretBoxError("a stored document cannot be decrypted with the configured key") from exc
