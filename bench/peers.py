"""Peers: the same envelope work done by the AWS Encryption SDK and by Tink, in the same run.

Every case stores the same events (``bench.ingest.make_workload``) as rows of the vault's
``records`` table, one write transaction per batch of 1000, exactly as the floor does
(``bench.ingest.FloorTrial``: same preparation, same table, same ``vault.storage.Database``
settings, same insert); only the per-record sealing differs:

``floor``
    A fresh DEK, AES-256-GCM of the record under it, the DEK sealed by AES-256-GCM under the
    subject-day key; associated data binds dataset, subject, day, key id and record id.
``aws-esdk[suite=default]``
    ``EncryptionSDKClient.encrypt`` (commitment policy ``REQUIRE_ENCRYPT_REQUIRE_DECRYPT``, its
    default) of the record with a raw AES-256 wrapping key (``RawMasterKey``, the SDK's raw AES
    key provider: the MPL "raw AES keyring" is the same wrapping in a separate native package),
    an encryption context binding dataset, subject, day and record id, and the SDK's default
    algorithm suite (``AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384``: a fresh data key per
    message, key commitment, and an ECDSA P-384 signature over every message). The message is
    the row's envelope.
``aws-esdk[suite=no-signature]``
    The same with ``AES_256_GCM_HKDF_SHA512_COMMIT_KEY`` (no signature).
``tink-envelope``
    Tink's ``KmsEnvelopeAead`` (a fresh AES256_GCM DEK per record, encrypted by the "remote"
    AEAD) with a local AES256_GCM keyset standing in for the KMS key; the associated data binds
    the same fields.
``service``
    ``vault.ingest.ingest`` (``bench.ingest.ServiceTrial``): everything the vault does.

Nothing is cached between records in any case: every record gets a fresh data key.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from bench.backends import TrialPlace
from bench.ingest import FloorTrial, Prepared, ServiceTrial, SubjectDayKey, make_workload
from bench.runner import Case, Goal, Mode, Suite
from bench.workload import TEXT_BYTES, Workload

__all__ = ["EsdkTrial", "TinkTrial", "suites"]

BATCH = 1000
#: Timed batches of 1000 per trial, by mode (plus one warm-up batch).
BATCHES = {"quick": 5, "full": 15}
GOAL_VS_ESDK = 20.0
SUITES = {
    "default": "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
    "no-signature": "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
}


class EsdkTrial(FloorTrial):
    """The floor's trial with each record sealed as one AWS Encryption SDK message."""

    def __init__(self, place: TrialPlace, workload: Workload, suite: str) -> None:
        import aws_encryption_sdk
        from aws_encryption_sdk.identifiers import (
            Algorithm,
            CommitmentPolicy,
            EncryptionKeyType,
            WrappingAlgorithm,
        )
        from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
        from aws_encryption_sdk.key_providers.raw import RawMasterKey

        self.algorithm = Algorithm[SUITES[suite]]
        self.client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )
        self.master_key = RawMasterKey(
            provider_id="tvault-bench",
            key_id=b"dataset-kek-1",
            wrapping_key=WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=os.urandom(32),
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            ),
        )
        super().__init__(place, workload)

    def seal(self, key: SubjectDayKey, p: Prepared, rid: uuid.UUID, plaintext: bytes) -> bytes:
        del key
        message, header = self.client.encrypt(
            source=plaintext,
            key_provider=self.master_key,
            algorithm=self.algorithm,
            encryption_context={
                "dataset": self.dataset_id,
                "subject": p.subject,
                "day": str(p.epoch),
                "record": rid.hex,
            },
        )
        if header.algorithm != self.algorithm:  # pragma: no cover - the SDK's contract
            raise RuntimeError(f"the SDK used {header.algorithm}, not {self.algorithm}")
        return bytes(message)

    def check_one(self, envelope: bytes) -> bytes:
        """Decrypt one stored message (the tests' round trip)."""
        plaintext, _ = self.client.decrypt(source=envelope, key_provider=self.master_key)
        return bytes(plaintext)


class TinkTrial(FloorTrial):
    """The floor's trial with each record sealed by Tink's KMS envelope AEAD (local KEK)."""

    def __init__(self, place: TrialPlace, workload: Workload) -> None:
        import tink
        from tink import aead

        aead.register()
        kek = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
        self.envelope: Any = aead.KmsEnvelopeAead(aead.aead_key_templates.AES256_GCM, kek)
        super().__init__(place, workload)

    def _aad(self, p: Prepared, rid: uuid.UUID) -> bytes:
        return b"|".join(
            (self.dataset_id.encode(), p.subject.encode(), str(p.epoch).encode(), rid.bytes)
        )

    def seal(self, key: SubjectDayKey, p: Prepared, rid: uuid.UUID, plaintext: bytes) -> bytes:
        del key
        return bytes(self.envelope.encrypt(plaintext, self._aad(p, rid)))


def suites(mode: Mode) -> list[Suite]:
    """Floor, service and the peers on the same batches of 1000; ratios to the peers."""
    count = BATCHES[mode.name]
    events = make_workload(BATCH, count)
    note = f"{count} timed batches of {BATCH} key_run events (~{TEXT_BYTES} B text)"
    params: dict[str, Any] = {"batch": BATCH}

    def floor(place: TrialPlace) -> FloorTrial:
        return FloorTrial(place, events)

    def service(place: TrialPlace) -> ServiceTrial:
        return ServiceTrial(place, events)

    def esdk(suite: str) -> Case:
        def prepare(place: TrialPlace) -> EsdkTrial:
            return EsdkTrial(place, events, suite)

        return Case(
            "aws-esdk", {"suite": suite, **params}, "events/s", prepare, f"{note}; {SUITES[suite]}"
        )

    def tink_case(place: TrialPlace) -> TinkTrial:
        return TinkTrial(place, events)

    floor_case = Case("floor", params, "events/s", floor, note)
    service_case = Case("service", params, "events/s", service, note)
    default, unsigned = esdk("default"), esdk("no-signature")
    tink = Case("tink-envelope", params, "events/s", tink_case, note)
    cases = [floor_case, service_case, default, unsigned, tink]
    goals = [
        Goal("service/esdk-default", service_case.key, default.key, GOAL_VS_ESDK),
        Goal("service/esdk-no-signature", service_case.key, unsigned.key, None),
        Goal("service/tink-envelope", service_case.key, tink.key, None),
        Goal("floor/esdk-default", floor_case.key, default.key, None),
        Goal("floor/esdk-no-signature", floor_case.key, unsigned.key, None),
        Goal("floor/tink-envelope", floor_case.key, tink.key, None),
    ]
    return [Suite("peers", cases, goals)]
