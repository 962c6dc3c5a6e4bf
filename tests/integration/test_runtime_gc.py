"""The composition root tunes the garbage collector once per process (vault.bootstrap)."""

from __future__ import annotations

import gc

from vault.bootstrap import Vault, _tune_gc


def test_collector_tuned_after_the_first_vault(vault: Vault) -> None:
    assert vault.db is not None
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()  # never switched off: cyclic garbage is still collected
    frozen = gc.get_freeze_count()
    _tune_gc()  # once per process: a second vault freezes nothing more
    assert gc.get_freeze_count() == frozen
