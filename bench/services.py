"""The environment of the platform services a benchmark starts as processes.

The machine's own CSU_* settings, DATABASE_URL and NATS_URL are left out (a bench must not touch
a deployment's data); each run gets its data folder and keys of its own under its work folder.
"""

import os
from pathlib import Path

from services.common.secretbox import SecretBox
from services.common.signing import Signer


def service_env(workdir: Path, nats_url: str, prefix: str, settings: dict[str, str]) -> dict[str, str]:
    keys = workdir / "keys"
    secrets, signing = keys / "secrets.key", keys / "signing.pem"
    if not secrets.exists():
        SecretBox.generate(secrets)
    if not signing.exists():
        Signer.generate(signing)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSU_") and k not in ("DATABASE_URL", "NATS_URL")}
    return env | {
        "CSU_DATA_DIR": str(workdir / "data"),
        "CSU_NATS_URL": nats_url,
        "CSU_NATS_PREFIX": prefix,
        "CSU_SECRETS_KEY_FILE": str(secrets),
        "CSU_SIGNING_KEY_FILE": str(signing),
        **settings,
    }
