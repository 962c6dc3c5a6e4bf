"""The hand-encoded record context is byte for byte the documented encode_context form."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto.context import encode_context
from vault.crypto.envelope import FORMAT_VERSION, RecordContext


@settings(max_examples=200, deadline=None)
@given(
    dataset=st.text(max_size=40),
    record=st.binary(min_size=16, max_size=16),
    subject=st.text(max_size=40),
    epoch=st.integers(-(2**63), 2**63 - 1),
    sek=st.binary(min_size=16, max_size=16),
    label=st.binary(min_size=1, max_size=30),
)
def test_record_context_matches_encode_context(dataset, record, subject, epoch, sek, label) -> None:
    ctx = RecordContext(dataset, record, subject, epoch, sek)
    expected = encode_context(label, FORMAT_VERSION, dataset, record, subject, epoch, sek)
    assert ctx.aad(label) == expected
