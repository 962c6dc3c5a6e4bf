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

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from bench.backends import Backend, TrialPlace
from bench.ingest import FloorTrial, Prepared, ServiceTrial, SubjectDayKey, make_workload
from bench.runner import Case, Goal, Measure, Mode, Suite, Timed, interleave, shared_place
from bench.workload import TEXT_BYTES, Workload

__all__ = ["Esdk", "EsdkTrial", "TinkTrial", "suites", "tink_envelope"]

BATCH = 1000
#: Timed batches of 1000 per trial, by mode (plus one warm-up batch).
BATCHES = {"quick": 3, "full": 10}
#: The same for the ESDK's default suite, ~1 ms a record here: a batch of 1000 is already a
#: second of steady, CPU-bound sealing, so more batches would only lengthen the run.
ESDK_DEFAULT_BATCHES = {"quick": 1, "full": 3}
#: Events of the ESDK cases' warm-up batch: enough to prime the engine and the SDK (a whole
#: batch would cost them another second of sealing per trial, untimed).
ESDK_WARMUP = 100
GOAL_VS_ESDK = 20.0
SUITES = {
    "default": "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
    "no-signature": "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
}


class Esdk:
    """An AWS Encryption SDK client, raw AES-256 wrapping key and algorithm suite."""

    def __init__(self, suite: str) -> None:
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

    def encrypt(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        """One message: a fresh data key (no caching), the context bound."""
        message, header = self.client.encrypt(
            source=plaintext,
            key_provider=self.master_key,
            algorithm=self.algorithm,
            encryption_context=context,
        )
        if header.algorithm != self.algorithm:  # pragma: no cover - the SDK's contract
            raise RuntimeError(f"the SDK used {header.algorithm}, not {self.algorithm}")
        return bytes(message)

    def decrypt(self, message: bytes) -> bytes:
        """Inverse of :meth:`encrypt`."""
        plaintext, _ = self.client.decrypt(source=message, key_provider=self.master_key)
        return bytes(plaintext)


def tink_envelope() -> Any:
    """Tink's KMS envelope AEAD (AES256_GCM DEKs) under a local AES256_GCM keyset as the KEK."""
    import tink
    from tink import aead

    aead.register()
    kek = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
    return aead.KmsEnvelopeAead(aead.aead_key_templates.AES256_GCM, kek)


class EsdkTrial(FloorTrial):
    """The floor's trial with each record sealed as one AWS Encryption SDK message."""

    def __init__(self, place: TrialPlace, workload: Workload, suite: str) -> None:
        self.esdk = Esdk(suite)
        super().__init__(place, workload, warmup_events=ESDK_WARMUP)

    def seal(self, key: SubjectDayKey, p: Prepared, rid: uuid.UUID, plaintext: bytes) -> bytes:
        del key
        context = {
            "dataset": self.dataset_id,
            "subject": p.subject,
            "day": str(p.epoch),
            "record": rid.hex,
        }
        return self.esdk.encrypt(plaintext, context)

    def check_one(self, envelope: bytes) -> bytes:
        """Decrypt one stored message (the tests' round trip)."""
        return self.esdk.decrypt(envelope)


class TinkTrial(FloorTrial):
    """The floor's trial with each record sealed by Tink's KMS envelope AEAD (local KEK)."""

    def __init__(self, place: TrialPlace, workload: Workload) -> None:
        self.envelope: Any = tink_envelope()
        super().__init__(place, workload)

    def _aad(self, p: Prepared, rid: uuid.UUID) -> bytes:
        return b"|".join(
            (self.dataset_id.encode(), p.subject.encode(), str(p.epoch).encode(), rid.bytes)
        )

    def seal(self, key: SubjectDayKey, p: Prepared, rid: uuid.UUID, plaintext: bytes) -> bytes:
        del key
        return bytes(self.envelope.encrypt(plaintext, self._aad(p, rid)))


# -- sealing only ---------------------------------------------------------------------------------

#: Records sealed per timed repetition in the ``seal`` suite, by mode and sealer.
SEALS = {
    "quick": {"vault": 5_000, "tink": 5_000, "no-signature": 1_000, "default": 500},
    "full": {"vault": 60_000, "tink": 60_000, "no-signature": 15_000, "default": 6_000},
}


def _plaintexts() -> list[tuple[bytes, str, int]]:
    """The stored forms of 1000 workload events as JSON, with pseudonym and day."""
    floor_like = make_workload(1000, 0).batches[0]
    out = []
    for raw in floor_like:
        p = FloorTrial._prepare(raw)
        body = json.dumps(p.body, separators=(",", ":"), ensure_ascii=False).encode()
        out.append((body, p.subject, p.epoch))
    return out


def _sealers(counts: dict[str, int]) -> list[Timed]:
    from vault.crypto.envelope import RecordContext, open_record, seal_record

    texts = _plaintexts()
    dataset = uuid.uuid4().hex
    sek, sek_id = os.urandom(32), uuid.uuid4().bytes
    esdk = {suite: Esdk(suite) for suite in SUITES}
    tink = tink_envelope()

    def vault_seal() -> int:
        n = counts["vault"]
        for i in range(n):
            body, subject, epoch = texts[i % len(texts)]
            ctx = RecordContext(dataset, uuid.uuid4().bytes, subject, epoch, sek_id)
            seal_record(sek, ctx, body)
        return n

    def esdk_seal(suite: str) -> Callable[[], int]:
        def run() -> int:
            n = counts[suite]
            for i in range(n):
                body, subject, epoch = texts[i % len(texts)]
                context = {
                    "dataset": dataset,
                    "subject": subject,
                    "day": str(epoch),
                    "record": uuid.uuid4().hex,
                }
                esdk[suite].encrypt(body, context)
            return n

        return run

    def tink_seal() -> int:
        n = counts["tink"]
        for i in range(n):
            body, subject, epoch = texts[i % len(texts)]
            aad = b"|".join((dataset.encode(), subject.encode(), str(epoch).encode()))
            tink.encrypt(body, aad + b"|" + uuid.uuid4().bytes)
        return n

    # Each sealer must round-trip before it is timed.
    body, subject, epoch = texts[0]
    ctx = RecordContext(dataset, uuid.uuid4().bytes, subject, epoch, sek_id)
    if open_record(sek, ctx, seal_record(sek, ctx, body)) != body:
        raise RuntimeError("vault envelope round trip failed")
    for one in esdk.values():
        if one.decrypt(one.encrypt(body, {"dataset": dataset})) != body:
            raise RuntimeError("ESDK round trip failed")
    if tink.decrypt(tink.encrypt(body, b"ad"), b"ad") != body:
        raise RuntimeError("Tink round trip failed")

    def case(name: str, params: dict[str, Any], n: int, note: str) -> Case:
        return Case(name, params, "records/s", shared_place, f"{n:,} records of ~300 B; {note}")

    return [
        Timed(
            case("seal-vault", {}, counts["vault"], "vault.crypto.envelope.seal_record"),
            vault_seal,
        ),
        Timed(
            case("seal-esdk", {"suite": "default"}, counts["default"], SUITES["default"]),
            esdk_seal("default"),
        ),
        Timed(
            case(
                "seal-esdk",
                {"suite": "no-signature"},
                counts["no-signature"],
                SUITES["no-signature"],
            ),
            esdk_seal("no-signature"),
        ),
        Timed(case("seal-tink", {}, counts["tink"], "KmsEnvelopeAead, local KEK"), tink_seal),
    ]


def _measure_seal(counts: dict[str, int]) -> Measure:
    def measure(backend: Backend, repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
        del backend
        goals = [
            Goal("seal vault/esdk-default", "seal-vault", "seal-esdk[suite=default]", GOAL_VS_ESDK),
            Goal(
                "seal vault/esdk-no-signature", "seal-vault", "seal-esdk[suite=no-signature]", None
            ),
            Goal("seal vault/tink", "seal-vault", "seal-tink", None),
        ]
        return interleave("seal", _sealers(counts), repeats, progress, goals)

    return measure


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
        mine, about = events, note
        if suite == "default":
            few = ESDK_DEFAULT_BATCHES[mode.name]
            mine = make_workload(BATCH, few)
            about = f"{few} timed batches of {BATCH} key_run events (~{TEXT_BYTES} B text)"

        def prepare(place: TrialPlace) -> EsdkTrial:
            return EsdkTrial(place, mine, suite)

        return Case(
            "aws-esdk", {"suite": suite, **params}, "events/s", prepare, f"{about}; {SUITES[suite]}"
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
    return [
        Suite("peers", cases, goals),
        Suite("seal", measure=_measure_seal(SEALS[mode.name]), once=True),
    ]
