"""Master key rotation: add a key, re-wrap every data key under it, in small batches so the
running bot stays readable throughout (it reloads the key ring when it meets the new key)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from storage.models import DataKey
from storage.uow import Database


async def rotate_master_key(
    db: Database, *, batch: int = 200, progress: Callable[[int, int], None] | None = None
) -> tuple[int, int]:
    """Returns (new master key id, data keys re-wrapped)."""
    new_id = db.ring.add_master_key()
    async with db.uow() as uow:
        total = int(
            await uow.session.scalar(
                select(func.count()).select_from(DataKey).where(DataKey.wrapped.is_not(None))
            )
            or 0
        )
    done = 0
    if progress:
        progress(0, total)
    while True:
        async with db.uow() as uow:
            n = await uow.vault.rewrap_batch(new_id, batch)
            await uow.commit()
        if n == 0:
            break
        # A bot still on the old ring may create keys meanwhile; the loop picks those up too.
        done += n
        total = max(total, done)
        if progress:
            progress(done, total)
    return new_id, done
