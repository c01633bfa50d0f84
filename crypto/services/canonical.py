"""One asset across sources: CoinGecko and CoinPaprika assets of the same coin share a canonical
asset. The rule (crypto/linking.py) links only on agreeing evidence, never the symbol alone;
ambiguous assets stay unlinked and say why. Operators link and unlink by hand in the admin, and
the rule never undoes what an operator decided."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from crypto.linking import Candidate, links_find
from crypto.models import Asset, CanonicalAsset
from crypto.services.locks import advisory_xact_lock_wait

logger = logging.getLogger(__name__)
LINKED_SOURCES = ("coingecko", "coinpaprika")
Status = Asset.LinkStatus
OPERATOR = (Status.OPERATOR_LINKED, Status.OPERATOR_UNLINKED)


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
    unless some asset was never examined (or `force`)."""
    report = LinkReport()
    with transaction.atomic():
        advisory_xact_lock_wait(name="asset-links")
        pending = Asset.objects.filter(source__in=LINKED_SOURCES, link_status=Status.PENDING)
        if not force and not pending.exists():
            return None
        gecko, paprika = _candidates("coingecko"), _candidates("coinpaprika")
        links, ambiguous = links_find(
            (Candidate("coingecko", a.upstream_id, a.symbol, a.name) for a in gecko.values()),
            (Candidate("coinpaprika", a.upstream_id, a.symbol, a.name) for a in paprika.values()),
        )
        decided: set[int] = set()
        for link in links:
            left, right = gecko[link.coingecko_id], paprika[link.coinpaprika_id]
            canonical = CanonicalAsset.objects.create(symbol=left.symbol.upper(), name=left.name)
            Asset.objects.filter(pk__in=[left.pk, right.pk]).update(
                canonical=canonical, link_status=Status.LINKED, link_note=link.reason[:500]
            )
            decided |= {left.pk, right.pk}
            report.linked += 1
        for case in ambiguous:
            asset = gecko[case.coingecko_id]
            note = f"{case.reason}; candidates: {', '.join(case.candidates)}"
            Asset.objects.filter(pk=asset.pk).update(link_status=Status.AMBIGUOUS, link_note=note[:500])
            decided.add(asset.pk)
            report.ambiguous += 1
        report.no_match = (
            Asset.objects.filter(pk__in=[a.pk for a in [*gecko.values(), *paprika.values()]])
            .exclude(pk__in=decided)
            .update(link_status=Status.NO_MATCH, link_note="")
        )
    logger.info("asset links refreshed", extra=report.__dict__)
    return report


def assets_link(*, assets: QuerySet[Asset], who: str) -> CanonicalAsset:
    """An operator's link: the given assets (one per source) are one coin."""
    chosen = list(assets.select_related("canonical"))
    sources = [a.source for a in chosen]
    if len(chosen) < 2 or len(set(sources)) != len(sources):
        raise ValueError("select two or more assets, at most one per source")
    with transaction.atomic():
        canonical = next((a.canonical for a in chosen if a.canonical is not None), None)
        if canonical is None:
            first = next((a for a in chosen if a.source == "coingecko"), chosen[0])
            canonical = CanonicalAsset.objects.create(symbol=first.symbol.upper(), name=first.name)
        note = f"linked by {who} on {timezone.now():%Y-%m-%d %H:%M}"
        # Whatever else was linked to this coin from the same sources is unlinked: one asset per source.
        Asset.objects.filter(canonical=canonical, source__in=sources).exclude(pk__in=[a.pk for a in chosen]).update(
            canonical=None, link_status=Status.OPERATOR_UNLINKED, link_note=f"replaced; {note}"
        )
        Asset.objects.filter(pk__in=[a.pk for a in chosen]).update(
            canonical=canonical, link_status=Status.OPERATOR_LINKED, link_note=note
        )
        _orphans_delete()
    return canonical


def assets_unlink(*, assets: QuerySet[Asset], who: str) -> int:
    """An operator's unlink: these assets belong to no canonical asset, and the rule leaves them so."""
    note = f"unlinked by {who} on {timezone.now():%Y-%m-%d %H:%M}"
    with transaction.atomic():
        affected = set(assets.exclude(canonical=None).values_list("canonical_id", flat=True))
        count = assets.update(canonical=None, link_status=Status.OPERATOR_UNLINKED, link_note=note)
        # A coin left with one source links nothing: its last asset goes back to the rule.
        lone = CanonicalAsset.objects.filter(pk__in=affected).annotate(n=Count("assets")).filter(n=1).values("pk")
        Asset.objects.filter(canonical__in=lone).update(
            canonical=None, link_status=Status.NO_MATCH, link_note=f"its counterpart was {note}"
        )
        _orphans_delete()
    return count


def _orphans_delete() -> None:
    CanonicalAsset.objects.filter(assets__isnull=True).delete()
