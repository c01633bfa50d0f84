"""One asset across sources: CoinGecko and CoinPaprika assets of the same coin share a canonical
asset. The rule (crypto/services/link/rule.py) links only on agreeing evidence, never the symbol alone;
ambiguous assets stay unlinked and say why. Operators link and unlink by hand in the admin, and
the rule never undoes what an operator decided."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from crypto.models import Asset, CanonicalAsset
from crypto.services.ingest.locks import advisory_xact_lock_wait
from crypto.services.link.rule import Candidate, links_find
from crypto.sources import sources

logger = logging.getLogger(__name__)
Status = Asset.LinkStatus
OPERATOR = (Status.OPERATOR_LINKED, Status.OPERATOR_UNLINKED)
LINKS_LOCK = "asset-links"


@dataclass
class LinkReport:
    linked: int = 0
    ambiguous: int = 0
    no_match: int = 0


def _candidates(source: str) -> dict[str, Asset]:
    assets = Asset.objects.filter(source=source, canonical__isnull=True).exclude(link_status__in=OPERATOR)
    return {asset.upstream_id: asset for asset in assets}


def links_refresh(*, force: bool = False) -> LinkReport | None:
    """Link the unlinked CoinGecko and CoinPaprika assets where the rule is sure. Does nothing
    unless some asset was never examined (or `force`). Holds the links lock, as the operator's
    actions do, so the rule never acts on a stale view of an operator's decision."""
    report = LinkReport()
    with transaction.atomic():
        advisory_xact_lock_wait(name=LINKS_LOCK)
        linked = [source.name for source in sources().values() if source.linked]
        pending = Asset.objects.filter(source__in=linked, link_status=Status.PENDING)
        if not force and not pending.exists():
            return None
        gecko, paprika = _candidates("coingecko"), _candidates("coinpaprika")
        links, ambiguous = links_find(
            (Candidate("coingecko", a.upstream_id, a.symbol, a.name) for a in gecko.values()),
            (Candidate("coinpaprika", a.upstream_id, a.symbol, a.name) for a in paprika.values()),
        )
        coins = CanonicalAsset.objects.bulk_create(
            [
                CanonicalAsset(symbol=gecko[link.coingecko_id].symbol.upper(), name=gecko[link.coingecko_id].name)
                for link in links
            ]
        )
        changed: list[Asset] = []
        for link, coin in zip(links, coins, strict=True):
            for asset in (gecko[link.coingecko_id], paprika[link.coinpaprika_id]):
                asset.canonical, asset.link_status, asset.link_note = coin, Status.LINKED, link.reason[:500]
                changed.append(asset)
        for case in ambiguous:
            asset = gecko[case.coingecko_id]
            asset.link_status = Status.AMBIGUOUS
            asset.link_note = f"{case.reason}; candidates: {', '.join(case.candidates)}"[:500]
            changed.append(asset)
        decided = {asset.pk for asset in changed}
        # Small batches: each is one UPDATE with a CASE per row, whose cost grows with its square.
        Asset.objects.bulk_update(changed, ["canonical", "link_status", "link_note"], batch_size=100)
        unmatched = [
            asset.pk
            for asset in [*gecko.values(), *paprika.values()]
            if asset.pk not in decided and (asset.link_status, asset.link_note) != (Status.NO_MATCH, "")
        ]
        Asset.objects.filter(pk__in=unmatched).update(link_status=Status.NO_MATCH, link_note="")
        report.linked, report.ambiguous, report.no_match = len(links), len(ambiguous), len(unmatched)
    logger.info("asset links refreshed", extra=report.__dict__)
    return report


def assets_link(*, assets: QuerySet[Asset], who: str) -> CanonicalAsset:
    """An operator's link: the given assets (one per source) are one coin."""
    note = f"linked by {who} on {timezone.now():%Y-%m-%d %H:%M}"
    with transaction.atomic():
        advisory_xact_lock_wait(name=LINKS_LOCK)
        chosen = list(assets.select_related("canonical"))
        sources = [a.source for a in chosen]
        if len(chosen) < 2 or len(set(sources)) != len(sources):
            raise ValueError("select two or more assets, at most one per source")
        before = {a.canonical_id for a in chosen if a.canonical_id is not None}
        canonical = next((a.canonical for a in chosen if a.canonical is not None), None)
        if canonical is None:
            first = next((a for a in chosen if a.source == "coingecko"), chosen[0])
            canonical = CanonicalAsset.objects.create(symbol=first.symbol.upper(), name=first.name)
        # Whatever else was linked to this coin from the same sources is unlinked: one asset per source.
        Asset.objects.filter(canonical=canonical, source__in=sources).exclude(pk__in=[a.pk for a in chosen]).update(
            canonical=None, link_status=Status.OPERATOR_UNLINKED, link_note=f"replaced; {note}"
        )
        Asset.objects.filter(pk__in=[a.pk for a in chosen]).update(
            canonical=canonical, link_status=Status.OPERATOR_LINKED, link_note=note
        )
        _lone_release(before - {canonical.pk}, note=f"its counterpart was re-{note}")
    return canonical


def assets_unlink(*, assets: QuerySet[Asset], who: str) -> int:
    """An operator's unlink: these assets belong to no canonical asset, and the rule leaves them so."""
    note = f"unlinked by {who} on {timezone.now():%Y-%m-%d %H:%M}"
    with transaction.atomic():
        advisory_xact_lock_wait(name=LINKS_LOCK)
        affected = set(assets.exclude(canonical=None).values_list("canonical_id", flat=True))
        count = assets.update(canonical=None, link_status=Status.OPERATOR_UNLINKED, link_note=note)
        _lone_release(affected, note=f"its counterpart was {note}")
    return count


def _lone_release(coins: set[int], *, note: str) -> None:
    """A coin left with one source links nothing: its last asset goes back to the rule, and coins
    with no asset left are deleted."""
    lone = CanonicalAsset.objects.filter(pk__in=coins).annotate(n=Count("assets")).filter(n=1).values("pk")
    Asset.objects.filter(canonical__in=lone).update(canonical=None, link_status=Status.NO_MATCH, link_note=note[:500])
    CanonicalAsset.objects.filter(assets__isnull=True).delete()
