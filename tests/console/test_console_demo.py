"""The ``make demo`` hook runs end to end against the relay with intake wired in: a report,
its verification, an escalation the stand-in accepts, in plain words."""

from __future__ import annotations

from pathlib import Path

from console.kit import FRANKING_KEY, deployment
from overt.console.demo import safety_walkthrough
from overt.storage.moderation import ItemState


async def test_safety_walkthrough(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        (tmp_path / "franking.key").write_bytes(FRANKING_KEY)
        alice, bob = await d.user("alice"), await d.user("bob")
        lines: list[str] = []
        await safety_walkthrough(
            "http://overt.test", tmp_path / "demo", alice, bob, server_data_dir=tmp_path,
            say=lines.append,
        )  # fmt: skip
        text = "\n".join(lines)
        assert "refused (409 already_reported)" in text
        assert "the local stand-in accepted it as report" in text
        assert d.storage.reports is not None
        (item,) = await d.storage.reports.queue({ItemState.CLOSED}, 10)
        assert item.resolution == "escalate"
        assert any(e.action == "escalate" for e in await d.storage.reports.audit(limit=20))
