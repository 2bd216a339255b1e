"""What every part of the requisition service works with, built once by main (or by a test)."""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nats.js import JetStreamContext
from sqlalchemy import Engine

from services.common.anchoring import AnchorStore, Cadence
from services.common.clock import Clock
from services.common.objectstore import ObjectStore, make_store
from services.common.pb.csu.v1 import archive_pb2_grpc, masking_pb2_grpc
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.common.signing import Signer
from services.requisition.register import key_fingerprint


@dataclass
class Context:
    settings: Settings
    engine: Engine
    clock: Clock
    signer: Signer
    box: SecretBox
    # The buffer (extracts), the documents (encrypted), the built packages.
    extractions: ObjectStore
    documents: ObjectStore
    exports: ObjectStore
    archive: "archive_pb2_grpc.ArchiveServiceAsyncStub"
    masking: "masking_pb2_grpc.MaskingServiceAsyncStub | None"
    work_dir: Path
    js: JetStreamContext | None = None

    @property
    def prefix(self) -> str:
        return self.settings.nats_prefix

    @cached_property
    def cadence(self) -> Cadence:
        """Where the register's signed checkpoints fall (services/common/anchoring.py)."""
        return Cadence.of(self.settings.chain_checkpoint_entries, self.settings.chain_checkpoint_minutes)

    @cached_property
    def anchors(self) -> AnchorStore:
        """The anchors bucket, where the register's head is published outside the database."""
        return AnchorStore(
            make_store(self.settings, self.settings.bucket_anchors), self.settings.anchor_retain_days, self.clock
        )

    @cached_property
    def key_fingerprint(self) -> str:
        return key_fingerprint(self.signer)
