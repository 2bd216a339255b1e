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


def record_statements(env: dict[str, str], cameras: list[str]) -> None:
    """Each camera's signed no-private-area statement in masking's database (as the gateway would
    have recorded it), before the services start, so masking passes them through from the start."""
    import json
    import uuid

    from services.common import db
    from services.common.clock import SystemClock
    from services.common.settings import Settings
    from services.masking.models import StatementRow
    from services.masking.store import MaskStore

    # Explicit: the bench process's own DATABASE_URL must not send the statements elsewhere.
    settings = Settings(data_dir=Path(env["CSU_DATA_DIR"]), database_url=env.get("CSU_DATABASE_URL", ""))  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("masking", engine)
    store = MaskStore(engine, SystemClock())
    signer = Signer.from_file(Path(env["CSU_SIGNING_KEY_FILE"]))
    for camera in cameras:
        data = json.dumps({"camera_id": camera, "supervisor": "bench", "text": "no private area", "signed_us": 1})
        store.record_statement(
            StatementRow(
                id=uuid.uuid4().hex,
                camera_id=camera,
                supervisor="bench",
                text="no private area",
                signed_us=1,
                statement=data,
                signature=signer.sign(data.encode()),
                public_key_pem=signer.public_pem(),
                recorded_by="bench",
            )
        )
    engine.dispose()
