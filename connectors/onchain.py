"""EVM chains through web3: Chainlink AggregatorV3 feeds as index sources, AnswerUpdated events, ERC-20 collateral.

Reads are reorg-safe: with ``confirmations = n`` every call is made at block ``latest - n`` and events are
reported only once ``n`` blocks deep; a block whose hash changed under a reported event rewinds the watcher.

    w3 = Web3(HTTPProvider(settings.chain.rpc_url))
    feed = ChainlinkFeed(w3, "0x...", index="btc_usd", max_age_s=3600, confirmations=2)
    feed.latest()                         # IndexPrice(price=..., source="chainlink:0x…", stale=False)
    source = ChainlinkPriceSource({"btc_usd": AsyncChainlinkFeed(aw3, "0x...", index="btc_usd")})
    await source.latest("btc_usd")        # app.ports.PriceSource

Reverts surface as eth-tester's ``TransactionFailed`` in-process and as web3's ``ContractLogicError`` over
JSON-RPC; both become :class:`ChainError` (``chain.revert``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3Exception

from app.bus import Bus
from app.domain import IndexPrice
from app.errors import BadMarketData, ConnectorError, InvalidInput

log = logging.getLogger(__name__)

AGGREGATOR_V3_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "type": "function",
        "name": "description",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "latestRoundData",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"name": "roundId", "type": "uint80"},
            {"name": "answer", "type": "int256"},
            {"name": "startedAt", "type": "uint256"},
            {"name": "updatedAt", "type": "uint256"},
            {"name": "answeredInRound", "type": "uint80"},
        ],
    },
    {
        "type": "function",
        "name": "getRoundData",
        "stateMutability": "view",
        "inputs": [{"name": "_roundId", "type": "uint80"}],
        "outputs": [
            {"name": "roundId", "type": "uint80"},
            {"name": "answer", "type": "int256"},
            {"name": "startedAt", "type": "uint256"},
            {"name": "updatedAt", "type": "uint256"},
            {"name": "answeredInRound", "type": "uint80"},
        ],
    },
    {
        "type": "event",
        "name": "AnswerUpdated",
        "anonymous": False,
        "inputs": [
            {"name": "current", "type": "int256", "indexed": True},
            {"name": "roundId", "type": "uint256", "indexed": True},
            {"name": "updatedAt", "type": "uint256", "indexed": False},
        ],
    },
]

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "allowance",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


class ChainError(ConnectorError):
    """A chain call failed (revert, bad output, node error)."""

    code = "chain.error"


def _revert_types() -> tuple[type[BaseException], ...]:
    try:
        from eth_tester.exceptions import TransactionFailed  # in-process chains (tests) raise this
    except ImportError:  # production installs need not have eth-tester
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


REVERTS = _revert_types()


def chain_error(exc: BaseException, what: str) -> ChainError:
    """The typed error of a failed chain call (reverts as ``chain.revert``, from either library)."""
    if isinstance(exc, REVERTS):
        return ChainError(f"{what} reverted: {str(exc)[:200]}", code="chain.revert")
    if isinstance(exc, BadFunctionCallOutput):
        return ChainError(
            f"{what}: no contract or wrong ABI at that address ({str(exc)[:120]})", code="chain.bad_output"
        )
    return ChainError(f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}", code="chain.call_failed")


_CALL_ERRORS: tuple[type[BaseException], ...] = (*REVERTS, Web3Exception, ValueError, OSError)


@dataclass(frozen=True, slots=True)
class RoundData:
    """One AggregatorV3 round: ``answer`` scaled by ``10**decimals``, times in epoch seconds."""

    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int
    decimals: int
    block: int

    @property
    def price(self) -> float:
        """The answer as a float price (USD per unit for */USD feeds)."""
        return float(Decimal(self.answer) / (Decimal(10) ** self.decimals))


def validate_round(rd: RoundData, name: str) -> None:
    """Chainlink's own consumer checks: positive answer, completed round, answered in this round or later."""
    if rd.updated_at == 0:
        raise BadMarketData(
            f"{name}: round {rd.round_id} is not complete (updatedAt = 0)", code="data.bad.incomplete_round"
        )
    if rd.answer <= 0:
        raise BadMarketData(f"{name}: non-positive answer {rd.answer}", code="data.bad.non_positive")
    if rd.answered_in_round < rd.round_id:
        raise BadMarketData(
            f"{name}: answer carried over from round {rd.answered_in_round} < {rd.round_id}",
            code="data.bad.carried_over",
        )


def _to_index(rd: RoundData, index: str, source: str, max_age_s: float, now_s: float) -> IndexPrice:
    stale = now_s - rd.updated_at > max_age_s
    return IndexPrice(ts=rd.updated_at * 1000, index=index, price=rd.price, source=source, stale=stale)


class _FeedBase:
    def __init__(
        self, address: str, index: str, max_age_s: float, confirmations: int, now_s: Callable[[], float] | None
    ) -> None:
        if confirmations < 0 or max_age_s <= 0:
            raise InvalidInput("confirmations must be >= 0 and max_age_s > 0", code="input.chain")
        self.address = address
        self.index = index
        self.max_age_s = max_age_s
        self.confirmations = confirmations
        self._now_s = now_s
        self._decimals: int | None = None
        self.source = f"chainlink:{address[:10]}"

    def _block(self, latest: int) -> int:
        return max(0, latest - self.confirmations)

    def _round(self, raw: Sequence[int], block: int) -> RoundData:
        assert self._decimals is not None
        rd = RoundData(int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4]), self._decimals, block)
        validate_round(rd, self.source)
        return rd


class ChainlinkFeed(_FeedBase):
    """A Chainlink AggregatorV3 feed read with synchronous web3."""

    def __init__(
        self,
        w3: Any,
        address: str,
        *,
        index: str,
        max_age_s: float = 3600,
        confirmations: int = 0,
        now_s: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(address, index, max_age_s, confirmations, now_s)
        self.w3 = w3
        self.contract = w3.eth.contract(address=w3.to_checksum_address(address), abi=AGGREGATOR_V3_ABI)

    def now_s(self) -> float:
        """Now in epoch seconds (the injected clock, else the confirmed block's timestamp)."""
        if self._now_s is not None:
            return self._now_s()
        return float(self.w3.eth.get_block("latest")["timestamp"])

    def decimals(self) -> int:
        """The feed's decimals (read once)."""
        if self._decimals is None:
            try:
                self._decimals = int(self.contract.functions.decimals().call())
            except _CALL_ERRORS as exc:
                raise chain_error(exc, f"{self.source}.decimals") from exc
        return self._decimals

    def round(self) -> RoundData:
        """The latest round at the confirmed block, validated (BadMarketData when unusable)."""
        self.decimals()
        try:
            block = self._block(self.w3.eth.block_number)
            raw = self.contract.functions.latestRoundData().call(block_identifier=block)
        except _CALL_ERRORS as exc:
            raise chain_error(exc, f"{self.source}.latestRoundData") from exc
        return self._round(raw, block)

    def latest(self) -> IndexPrice:
        """The latest confirmed price as an IndexPrice (``stale`` when older than ``max_age_s``)."""
        return _to_index(self.round(), self.index, self.source, self.max_age_s, self.now_s())


class AsyncChainlinkFeed(_FeedBase):
    """A Chainlink AggregatorV3 feed read with AsyncWeb3."""

    def __init__(
        self,
        w3: Any,
        address: str,
        *,
        index: str,
        max_age_s: float = 3600,
        confirmations: int = 0,
        now_s: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(address, index, max_age_s, confirmations, now_s)
        self.w3 = w3
        self.contract = w3.eth.contract(address=w3.to_checksum_address(address), abi=AGGREGATOR_V3_ABI)

    async def now_s(self) -> float:
        """Now in epoch seconds (the injected clock, else the latest block's timestamp)."""
        if self._now_s is not None:
            return self._now_s()
        return float((await self.w3.eth.get_block("latest"))["timestamp"])

    async def decimals(self) -> int:
        """The feed's decimals (read once)."""
        if self._decimals is None:
            try:
                self._decimals = int(await self.contract.functions.decimals().call())
            except _CALL_ERRORS as exc:
                raise chain_error(exc, f"{self.source}.decimals") from exc
        return self._decimals

    async def round(self) -> RoundData:
        """The latest round at the confirmed block, validated."""
        await self.decimals()
        try:
            block = self._block(await self.w3.eth.block_number)
            raw = await self.contract.functions.latestRoundData().call(block_identifier=block)
        except _CALL_ERRORS as exc:
            raise chain_error(exc, f"{self.source}.latestRoundData") from exc
        return self._round(raw, block)

    async def latest(self) -> IndexPrice:
        """The latest confirmed price as an IndexPrice."""
        rd = await self.round()
        return _to_index(rd, self.index, self.source, self.max_age_s, await self.now_s())


class ChainlinkPriceSource:
    """Chainlink feeds as an app.ports.PriceSource: one feed per index name."""

    def __init__(self, feeds: dict[str, ChainlinkFeed | AsyncChainlinkFeed], name: str = "chainlink") -> None:
        self.name = name
        self.feeds = feeds
        self.errors = 0

    async def latest(self, index: str) -> IndexPrice | None:
        """The feed's latest confirmed price (``stale`` flagged for the oracle); None if no feed or unusable."""
        feed = self.feeds.get(index)
        if feed is None:
            return None
        try:
            if isinstance(feed, AsyncChainlinkFeed):
                return await feed.latest()
            return feed.latest()
        except (BadMarketData, ChainError) as exc:
            self.errors += 1
            log.warning("%s: %s", feed.source, exc)
            return None


class ChainlinkPoller:
    """Publishes each feed's latest confirmed price onto a bus as a per-source IndexPrice (for the oracle).

    Unusable rounds are dropped (counted in ``source.errors``); stale ones are published with ``stale=True``
    and their own ``updatedAt`` time, so the oracle's age check drops them too.
    """

    def __init__(self, source: ChainlinkPriceSource, bus: Bus) -> None:
        self.source = source
        self.bus = bus
        self.published = 0

    async def poll_once(self) -> list[IndexPrice]:
        """Read every feed once and publish what it gives."""
        out = []
        for index in sorted(self.source.feeds):
            price = await self.source.latest(index)
            if price is None:
                continue
            self.bus.publish(price)
            self.published += 1
            out.append(price)
        return out

    async def run(self, interval_s: float = 15.0) -> None:
        """Poll forever every ``interval_s`` seconds (cancel the task to stop); chain errors are logged."""
        while True:
            try:
                await self.poll_once()
            except ChainError as exc:
                log.warning("chainlink poll failed: %s", exc)
            await asyncio.sleep(interval_s)


# --------------------------------------------------------------------------------------------------
# AnswerUpdated events, reorg-safe
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerUpdated:
    """A confirmed ``AnswerUpdated(current, roundId, updatedAt)`` log."""

    answer: int
    round_id: int
    updated_at: int
    block: int
    block_hash: str
    tx_hash: str
    log_index: int


class AnswerWatcher:
    """Polls a feed's AnswerUpdated logs that are ``confirmations`` blocks deep; rewinds if a reported block changed."""

    def __init__(self, feed: ChainlinkFeed, *, from_block: int = 0, max_range: int = 5_000) -> None:
        self.feed = feed
        self.next_block = from_block
        self.max_range = max_range
        self._hashes: dict[int, str] = {}  # block -> hash of blocks we reported events from
        self.reorgs = 0

    def _check_reorg(self) -> None:
        w3 = self.feed.w3
        for number in sorted(self._hashes):
            try:
                current = w3.eth.get_block(number)["hash"]
            except _CALL_ERRORS:
                current = None
            if current is None or bytes(current).hex() != self._hashes[number]:
                self.reorgs += 1
                log.warning("%s: block %d changed; re-reading from it", self.feed.source, number)
                self.next_block = number
                self._hashes = {b: h for b, h in self._hashes.items() if b < number}
                return

    def poll(self) -> list[AnswerUpdated]:
        """New confirmed events since the last poll, oldest first."""
        self._check_reorg()
        w3 = self.feed.w3
        try:
            safe = w3.eth.block_number - self.feed.confirmations
        except _CALL_ERRORS as exc:
            raise chain_error(exc, "eth_blockNumber") from exc
        out: list[AnswerUpdated] = []
        while self.next_block <= safe:
            to = min(safe, self.next_block + self.max_range - 1)
            try:
                logs = self.feed.contract.events.AnswerUpdated().get_logs(from_block=self.next_block, to_block=to)
            except _CALL_ERRORS as exc:
                raise chain_error(exc, "eth_getLogs AnswerUpdated") from exc
            for ev in logs:
                block_hash = bytes(ev["blockHash"]).hex()
                self._hashes[int(ev["blockNumber"])] = block_hash
                out.append(
                    AnswerUpdated(
                        int(ev["args"]["current"]),
                        int(ev["args"]["roundId"]),
                        int(ev["args"]["updatedAt"]),
                        int(ev["blockNumber"]),
                        block_hash,
                        bytes(ev["transactionHash"]).hex(),
                        int(ev["logIndex"]),
                    )
                )
            self.next_block = to + 1
        while len(self._hashes) > 256:
            self._hashes.pop(min(self._hashes))
        return out

    def index_prices(self, events: Iterable[AnswerUpdated]) -> list[IndexPrice]:
        """Events as IndexPrice (decimals applied, staleness against the feed's clock)."""
        decimals = self.feed.decimals()
        now = self.feed.now_s()
        out = []
        for ev in events:
            price = float(Decimal(ev.answer) / (Decimal(10) ** decimals))
            stale = now - ev.updated_at > self.feed.max_age_s
            out.append(IndexPrice(ev.updated_at * 1000, self.feed.index, price, self.feed.source, stale))
        return out


# --------------------------------------------------------------------------------------------------
# ERC-20 collateral
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenBalance:
    """A wallet's balance of one token (in token units, decimals applied) at a confirmed block."""

    wallet: str
    token: str
    symbol: str
    amount: Decimal
    block: int


@dataclass(frozen=True, slots=True)
class TokenAllowance:
    """How much of ``owner``'s token ``spender`` may move (token units)."""

    owner: str
    spender: str
    symbol: str
    amount: Decimal
    block: int


class Erc20Collateral:
    """ERC-20 balances and allowances of configured wallets, read at ``latest - confirmations``."""

    def __init__(self, w3: Any, token: str, wallets: Sequence[str], *, confirmations: int = 0) -> None:
        self.w3 = w3
        self.token = w3.to_checksum_address(token)
        self.wallets = [w3.to_checksum_address(w) for w in wallets]
        self.confirmations = confirmations
        self.contract = w3.eth.contract(address=self.token, abi=ERC20_ABI)
        self._meta: tuple[int, str] | None = None

    def _call(self, fn: Any, what: str, block: int | str = "latest") -> Any:
        try:
            return fn.call(block_identifier=block)
        except _CALL_ERRORS as exc:
            raise chain_error(exc, what) from exc

    def meta(self) -> tuple[int, str]:
        """(decimals, symbol) of the token, read once."""
        if self._meta is None:
            self._meta = (
                int(self._call(self.contract.functions.decimals(), "decimals")),
                str(self._call(self.contract.functions.symbol(), "symbol")),
            )
        return self._meta

    def _block(self) -> int:
        return max(0, int(self.w3.eth.block_number) - self.confirmations)

    def balances(self) -> list[TokenBalance]:
        """Every configured wallet's balance (token units)."""
        decimals, symbol = self.meta()
        block = self._block()
        scale = Decimal(10) ** decimals
        return [
            TokenBalance(
                w,
                self.token,
                symbol,
                Decimal(self._call(self.contract.functions.balanceOf(w), "balanceOf", block)) / scale,
                block,
            )
            for w in self.wallets
        ]

    def allowance(self, owner: str, spender: str) -> TokenAllowance:
        """``owner``'s allowance to ``spender`` (token units)."""
        decimals, symbol = self.meta()
        block = self._block()
        o, s = self.w3.to_checksum_address(owner), self.w3.to_checksum_address(spender)
        raw = self._call(self.contract.functions.allowance(o, s), "allowance", block)
        return TokenAllowance(o, s, symbol, Decimal(raw) / (Decimal(10) ** decimals), block)


class AsyncErc20Collateral:
    """ERC-20 balances of configured wallets through AsyncWeb3."""

    def __init__(self, w3: Any, token: str, wallets: Sequence[str], *, confirmations: int = 0) -> None:
        self.w3 = w3
        self.token = w3.to_checksum_address(token)
        self.wallets = [w3.to_checksum_address(w) for w in wallets]
        self.confirmations = confirmations
        self.contract = w3.eth.contract(address=self.token, abi=ERC20_ABI)

    async def balances(self) -> list[TokenBalance]:
        """Every configured wallet's balance (token units)."""
        try:
            decimals = int(await self.contract.functions.decimals().call())
            symbol = str(await self.contract.functions.symbol().call())
            block = max(0, int(await self.w3.eth.block_number) - self.confirmations)
            scale = Decimal(10) ** decimals
            out = []
            for w in self.wallets:
                raw = await self.contract.functions.balanceOf(w).call(block_identifier=block)
                out.append(TokenBalance(w, self.token, symbol, Decimal(raw) / scale, block))
            return out
        except _CALL_ERRORS as exc:
            raise chain_error(exc, "balanceOf") from exc


def wall_now_s() -> float:
    """Wall-clock seconds (for live feeds whose staleness is judged against real time)."""
    return time.time()


# --------------------------------------------------------------------------------------------------
# Building from configuration ([chain] in desk.toml: rpc_url, feeds, wallets, tokens, confirmations, max_age_s)
# --------------------------------------------------------------------------------------------------


def connect_rpc(rpc_url: str, *, asynchronous: bool = False) -> Any:
    """A Web3 (or AsyncWeb3) on a node's JSON-RPC URL; ChainError when it does not answer."""
    from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3

    if asynchronous:
        return AsyncWeb3(AsyncHTTPProvider(rpc_url))
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        _ = w3.eth.chain_id  # one round trip, so a wrong URL fails here and not at the first read
    except _CALL_ERRORS as exc:
        raise chain_error(exc, f"connect {rpc_url}") from exc
    return w3


def price_source_from_config(
    w3: Any, feeds: dict[str, str], *, confirmations: int = 2, max_age_s: float = 3600
) -> ChainlinkPriceSource:
    """One ChainlinkFeed per ``index -> aggregator address`` of the config, as a PriceSource."""
    return ChainlinkPriceSource(
        {
            index: ChainlinkFeed(w3, addr, index=index, max_age_s=max_age_s, confirmations=confirmations)
            for index, addr in feeds.items()
        }
    )


def collateral_from_config(
    w3: Any, tokens: dict[str, str], wallets: Sequence[str], *, confirmations: int = 2
) -> dict[str, Erc20Collateral]:
    """One Erc20Collateral per ``symbol -> token address`` of the config, over the configured wallets."""
    return {sym: Erc20Collateral(w3, addr, wallets, confirmations=confirmations) for sym, addr in tokens.items()}
