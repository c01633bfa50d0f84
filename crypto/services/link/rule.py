"""Decide which CoinGecko asset and which CoinPaprika asset are the same coin.

Pure functions over plain values: no ORM, no database, standard library only.

A pair is scored on three independent kinds of evidence, each worth 0, 1 or 2 points:

* symbol: 2 when the symbols are equal (case-insensitive); 1 when one side's symbol equals the other
  side's normalized name (CoinPaprika lists The Open Network as `TONCOIN`, CoinGecko names it Toncoin);
* name: 2 when the normalized names (lower case, only ``[a-z0-9]``) are equal; 1 when they are equal once
  generic words (coin, token, network, protocol) are dropped (``KuCoin`` / ``KuCoin Token``);
* id: 2 when the CoinPaprika id without its leading ``<symbol>-`` equals the CoinGecko id, hyphens ignored
  (``bnb-binance-coin`` / ``binancecoin``); 1 when it equals the CoinGecko normalized name.

A pair qualifies when the symbols are equal and the name or the id agrees as well, or, for a coin whose symbol
changed (a rebrand), when the id agrees fully and the name or the crossed symbol agrees too. The symbol alone never
links. Pairs whose wrapped/bridged/pegged/staked markers differ never qualify, so ``weth`` stays apart from
``eth-ethereum`` and ``binance-peg-weth`` apart from ``weth-weth``.

For each CoinGecko asset the best-scoring qualifying candidates are kept; a tie means `Ambiguous` and no link.
Links are one-to-one: a CoinPaprika asset goes to the CoinGecko asset that scored it highest, and a tie there is
also `Ambiguous`. Assets are looked up through indexes by symbol and by id slug, so the work grows with the number
of assets, not with their product. Prices and market caps are carried but not scored: the two sources are often
recorded far apart in time, when both have moved too much to tell coins apart.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

COINGECKO = "coingecko"
COINPAPRIKA = "coinpaprika"

GENERIC_WORDS = frozenset({"coin", "token", "network", "protocol"})
VARIANT_WORDS = frozenset({"wrapped", "bridged", "peg", "pegged", "staked", "restaked"})

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    """One asset as a source knows it."""

    source: str
    upstream_id: str
    symbol: str
    name: str
    market_cap_usd: Decimal | float | None = None
    price_usd: Decimal | float | None = None


@dataclass(frozen=True)
class Link:
    """A CoinGecko asset and a CoinPaprika asset judged to be the same coin."""

    coingecko_id: str
    coinpaprika_id: str
    reason: str


@dataclass(frozen=True)
class Ambiguous:
    """A CoinGecko asset left unlinked because several CoinPaprika assets (or claimants) matched equally well."""

    coingecko_id: str
    candidates: tuple[str, ...]
    reason: str


def normalize(text: str) -> str:
    """Lower case with everything but ``[a-z0-9]`` removed: ``"Binance-Peg WETH"`` -> ``"binancepegweth"``."""
    return _NON_ALNUM.sub("", text.lower())


def _words(text: str) -> list[str]:
    return [w for w in _NON_ALNUM.split(text.lower()) if w]


def paprika_slug(upstream_id: str, symbol: str) -> str:
    """The CoinPaprika id without its leading ``<symbol>-`` (also ``<symbol><digits>-``, as in ``hft1-hashflow``)."""
    sym, low = normalize(symbol), upstream_id.lower()
    if not sym or not low.startswith(sym):
        return low
    rest = low[len(sym) :].lstrip("0123456789")
    return rest[1:] if rest.startswith("-") and len(rest) > 1 else low


@dataclass(frozen=True)
class _Keys:
    """The comparable forms of one candidate, computed once."""

    upstream_id: str
    symbol: str
    name: str
    core: str
    id_key: str
    variants: frozenset[str]

    @classmethod
    def of(cls, candidate: Candidate) -> _Keys:
        name_words = _words(candidate.name)
        id_text = candidate.upstream_id
        if candidate.source == COINPAPRIKA:
            id_text = paprika_slug(candidate.upstream_id, candidate.symbol)
        id_words = _words(id_text)
        return cls(
            upstream_id=candidate.upstream_id,
            symbol=candidate.symbol.strip().lower(),
            name="".join(name_words),
            core="".join(w for w in name_words if w not in GENERIC_WORDS),
            id_key="".join(id_words),
            variants=frozenset(VARIANT_WORDS.intersection(name_words + id_words)),
        )


def _evidence(g: _Keys, p: _Keys) -> tuple[int, str] | None:
    """Score a CoinGecko/CoinPaprika pair, or ``None`` when it does not qualify as the same coin."""
    if g.variants != p.variants:
        return None
    if g.symbol and g.symbol == p.symbol:
        sym, sym_why = 2, "same symbol"
    elif (g.name and g.name == normalize(p.symbol)) or (p.name and p.name == normalize(g.symbol)):
        sym, sym_why = 1, "symbol matches the other name"
    else:
        sym, sym_why = 0, "different symbol"
    if g.name and g.name == p.name:
        name, name_why = 2, "same name"
    elif g.core and g.core == p.core:
        name, name_why = 1, "same name apart from a generic word"
    else:
        name, name_why = 0, ""
    if p.id_key and p.id_key == g.id_key:
        ident, id_why = 2, "id slug matches id"
    elif p.id_key and p.id_key == g.name:
        ident, id_why = 1, "id slug matches name"
    else:
        ident, id_why = 0, ""
    qualifies = (sym == 2 and (name or ident)) or (ident == 2 and (name or sym))
    if not qualifies:
        return None
    return sym + name + ident, ", ".join(why for why in (sym_why, name_why, id_why) if why)


def _unique(candidates: Iterable[Candidate], source: str) -> list[_Keys]:
    seen: dict[str, _Keys] = {}
    for candidate in candidates:
        if candidate.source != source:
            raise ValueError(f"expected a {source} candidate, got {candidate.source}: {candidate.upstream_id}")
        seen.setdefault(candidate.upstream_id, _Keys.of(candidate))
    return list(seen.values())


def links_find(gecko: Iterable[Candidate], paprika: Iterable[Candidate]) -> tuple[list[Link], list[Ambiguous]]:
    """Link CoinGecko assets to CoinPaprika assets one-to-one; return the links and the ambiguous cases.

    Both lists are sorted by ``coingecko_id``. CoinGecko assets with no qualifying candidate appear in neither.
    A repeated ``upstream_id`` keeps its first occurrence. Raises ``ValueError`` when a candidate's ``source``
    does not match the side it was passed on.
    """
    gecko_keys = _unique(gecko, COINGECKO)
    by_symbol: dict[str, list[_Keys]] = defaultdict(list)
    by_slug: dict[str, list[_Keys]] = defaultdict(list)
    for p in _unique(paprika, COINPAPRIKA):
        by_symbol[p.symbol].append(p)
        by_slug[p.id_key].append(p)

    ambiguous: dict[str, Ambiguous] = {}
    # coinpaprika id -> [(score, coingecko id, reason, is the gecko asset's only best candidate)]
    claims: dict[str, list[tuple[int, str, str, bool]]] = defaultdict(list)
    for g in gecko_keys:
        pool = {p.upstream_id: p for p in (*by_symbol.get(g.symbol, ()), *by_slug.get(g.id_key, ()))}
        scored = [(ev, pid) for pid, p in pool.items() if (ev := _evidence(g, p)) is not None]
        if not scored:
            continue
        best = max(score for (score, _), _ in scored)
        top = sorted((pid, why) for (score, why), pid in scored if score == best)
        for pid, why in top:
            claims[pid].append((best, g.upstream_id, why, len(top) == 1))
        if len(top) > 1:
            ambiguous[g.upstream_id] = Ambiguous(
                coingecko_id=g.upstream_id,
                candidates=tuple(pid for pid, _ in top),
                reason=f"{len(top)} coinpaprika assets match equally well ({top[0][1]})",
            )

    links: list[Link] = []
    for pid, claimants in claims.items():
        best = max(score for score, *_ in claimants)
        winners = sorted((gid, why, only) for score, gid, why, only in claimants if score == best)
        if len(winners) == 1:
            gid, why, only = winners[0]
            if only:
                links.append(Link(coingecko_id=gid, coinpaprika_id=pid, reason=why))
            continue
        rivals = [gid for gid, _, _ in winners]
        for gid, why, only in winners:
            if only:
                others = ", ".join(r for r in rivals if r != gid)
                ambiguous[gid] = Ambiguous(
                    coingecko_id=gid,
                    candidates=(pid,),
                    reason=f"{pid} matches coingecko {others} equally well ({why})",
                )
    links.sort(key=lambda link: link.coingecko_id)
    return links, sorted(ambiguous.values(), key=lambda a: a.coingecko_id)
