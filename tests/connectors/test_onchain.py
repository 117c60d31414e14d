"""The on-chain connector against a local EVM (py-evm through eth-tester): Vyper contracts compiled here."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

vyper = pytest.importorskip("vyper")
pytest.importorskip("eth_tester")

from web3 import AsyncWeb3, EthereumTesterProvider, HTTPProvider, Web3  # noqa: E402
from web3.providers.eth_tester import AsyncEthereumTesterProvider  # noqa: E402

from app.errors import BadMarketData  # noqa: E402
from connectors.onchain import (  # noqa: E402
    AnswerWatcher,
    AsyncChainlinkFeed,
    AsyncErc20Collateral,
    ChainError,
    ChainlinkFeed,
    ChainlinkPoller,
    ChainlinkPriceSource,
    Erc20Collateral,
    chain_error,
)
from tests.connectors.evm_shim import EvmShim  # noqa: E402

CONTRACTS = Path(__file__).parent / "contracts"
E8 = 10**8


@pytest.fixture(scope="module")
def artifacts() -> dict[str, tuple[list[Any], str]]:
    out = {}
    for name in ("MockAggregator", "MockERC20"):
        src = (CONTRACTS / f"{name}.vy").read_text()
        compiled = vyper.compile_code(src, contract_path=f"{name}.vy", output_formats=["abi", "bytecode"])
        out[name] = (compiled["abi"], compiled["bytecode"])
    return out


def deploy(w3: Web3, art: tuple[list[Any], str], *args: Any) -> Any:
    abi, code = art
    txh = w3.eth.contract(abi=abi, bytecode=code).constructor(*args).transact({"from": w3.eth.accounts[0]})
    rcpt = w3.eth.wait_for_transaction_receipt(txh)
    return w3.eth.contract(address=rcpt.contractAddress, abi=abi)


@pytest.fixture
def chain(artifacts):  # type: ignore[no-untyped-def]
    w3 = Web3(EthereumTesterProvider())
    agg = deploy(w3, artifacts["MockAggregator"], 8, "BTC / USD", 60_000 * E8)
    w3.provider.ethereum_tester.mine_blocks(3)  # the feed is deep enough for confirmed reads
    return w3, agg


def owner(w3: Web3) -> dict[str, str]:
    return {"from": w3.eth.accounts[0]}


def test_feed_reads_decimals_and_follows_the_price(chain) -> None:  # type: ignore[no-untyped-def]
    w3, agg = chain
    feed = ChainlinkFeed(w3, agg.address, index="btc_usd", max_age_s=3600)
    first = feed.latest()
    assert (
        first.price == 60_000.0
        and first.index == "btc_usd"
        and not first.stale
        and first.source.startswith("chainlink:")
    )
    agg.functions.updateAnswer(61_234_50_000_000).transact(owner(w3))
    assert feed.latest().price == 61_234.5
    assert feed.round().round_id == 2 and feed.decimals() == 8


def test_confirmations_hide_the_newest_blocks(chain) -> None:  # type: ignore[no-untyped-def]
    w3, agg = chain
    feed = ChainlinkFeed(w3, agg.address, index="btc_usd", confirmations=2)
    agg.functions.updateAnswer(62_000 * E8).transact(owner(w3))
    assert feed.latest().price == 60_000.0  # the update is not 2 blocks deep yet
    w3.provider.ethereum_tester.mine_blocks(2)
    assert feed.latest().price == 62_000.0


def test_stale_feed_is_flagged_and_bad_rounds_are_refused(chain) -> None:  # type: ignore[no-untyped-def]
    w3, agg = chain
    feed = ChainlinkFeed(w3, agg.address, index="btc_usd", max_age_s=600)
    tester = w3.provider.ethereum_tester
    now = w3.eth.get_block("latest")["timestamp"]
    tester.time_travel(now + 3600)
    tester.mine_blocks(1)
    assert feed.latest().stale
    agg.functions.updateRoundData(63_000 * E8, now + 3600, 1).transact(owner(w3))  # answeredInRound < roundId
    with pytest.raises(BadMarketData) as err:
        feed.latest()
    assert err.value.code == "data.bad.carried_over"
    agg.functions.updateRoundData(-5, now + 3600, 0).transact(owner(w3))
    with pytest.raises(BadMarketData, match="non-positive"):
        feed.latest()


async def test_price_source_drops_unusable_rounds(chain) -> None:  # type: ignore[no-untyped-def]
    w3, agg = chain
    source = ChainlinkPriceSource({"btc_usd": ChainlinkFeed(w3, agg.address, index="btc_usd")})
    assert (await source.latest("btc_usd")).price == 60_000.0
    assert await source.latest("eth_usd") is None
    agg.functions.updateRoundData(0, 0, 0).transact(owner(w3))
    assert await source.latest("btc_usd") is None and source.errors == 1


def test_reverts_are_typed_from_both_libraries(chain) -> None:  # type: ignore[no-untyped-def]
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractLogicError

    w3, agg = chain
    other = {"from": w3.eth.accounts[1]}
    with pytest.raises(TransactionFailed) as in_process:
        agg.functions.updateAnswer(1).call(other)
    assert chain_error(in_process.value, "updateAnswer").code == "chain.revert"
    with EvmShim(w3.provider) as shim:  # the same chain through a JSON-RPC node
        remote = Web3(HTTPProvider(shim.url))
        contract = remote.eth.contract(address=agg.address, abi=agg.abi)
        with pytest.raises(ContractLogicError) as over_rpc:
            contract.functions.updateAnswer(1).call(other)
        assert chain_error(over_rpc.value, "updateAnswer").code == "chain.revert"
        # the production path: a feed over HTTPProvider reads the same price
        assert ChainlinkFeed(remote, agg.address, index="btc_usd").latest().price == 60_000.0
    with pytest.raises(ChainError) as wrong:
        ChainlinkFeed(w3, w3.eth.accounts[2], index="btc_usd").latest()  # no contract there
    assert wrong.value.code in ("chain.bad_output", "chain.call_failed", "chain.revert")


def test_answer_updated_events_are_confirmed_and_survive_a_reorg(chain) -> None:  # type: ignore[no-untyped-def]
    w3, agg = chain
    tester = w3.provider.ethereum_tester
    feed = ChainlinkFeed(w3, agg.address, index="btc_usd", confirmations=1)
    watcher = AnswerWatcher(feed)
    tester.mine_blocks(1)
    assert [e.answer for e in watcher.poll()] == [60_000 * E8]
    snap = tester.take_snapshot()
    agg.functions.updateAnswer(61_000 * E8).transact(owner(w3))
    assert watcher.poll() == []  # not confirmed yet
    tester.mine_blocks(1)
    seen = watcher.poll()
    assert [e.answer for e in seen] == [61_000 * E8]
    assert [p.price for p in watcher.index_prices(seen)] == [61_000.0]
    # the chain reorganises: the 61,000 block is replaced by one carrying 59,000
    tester.revert_to_snapshot(snap)
    tester.mine_blocks(1)
    agg.functions.updateAnswer(59_000 * E8).transact(owner(w3))
    tester.mine_blocks(2)
    again = watcher.poll()
    assert watcher.reorgs == 1 and [e.answer for e in again] == [59_000 * E8]


def test_erc20_collateral_balances_and_allowances(artifacts) -> None:  # type: ignore[no-untyped-def]
    w3 = Web3(EthereumTesterProvider())
    token = deploy(w3, artifacts["MockERC20"], "USD Coin", "USDC", 6)
    a, b, spender = w3.eth.accounts[1], w3.eth.accounts[2], w3.eth.accounts[3]
    w3.provider.ethereum_tester.mine_blocks(3)
    token.functions.mint(a, 1_234_567_890).transact(owner(w3))
    token.functions.approve(spender, 5_000_000).transact({"from": a})
    coll = Erc20Collateral(w3, token.address, [a, b], confirmations=0)
    bal = {x.wallet: x.amount for x in coll.balances()}
    assert bal == {a: Decimal("1234.56789"), b: Decimal(0)}
    assert coll.allowance(a, spender).amount == Decimal(5) and coll.meta() == (6, "USDC")
    deep = Erc20Collateral(w3, token.address, [a], confirmations=3)
    assert deep.balances()[0].amount == 0  # the mint is not 3 blocks deep


async def test_async_feed_and_collateral(artifacts) -> None:  # type: ignore[no-untyped-def]
    aw3 = AsyncWeb3(AsyncEthereumTesterProvider())
    accts = await aw3.eth.accounts
    abi, code = artifacts["MockAggregator"]
    rc = await aw3.eth.wait_for_transaction_receipt(
        await aw3.eth.contract(abi=abi, bytecode=code)
        .constructor(8, "ETH / USD", 3000 * E8)
        .transact({"from": accts[0]})
    )
    agg = aw3.eth.contract(address=rc.contractAddress, abi=abi)
    feed = AsyncChainlinkFeed(aw3, rc.contractAddress, index="eth_usd")
    assert (await feed.latest()).price == 3000.0
    await agg.functions.updateAnswer(3100 * E8).transact({"from": accts[0]})
    source = ChainlinkPriceSource({"eth_usd": feed})
    assert (await source.latest("eth_usd")).price == 3100.0
    eabi, ecode = artifacts["MockERC20"]
    rc = await aw3.eth.wait_for_transaction_receipt(
        await aw3.eth.contract(abi=eabi, bytecode=ecode).constructor("Tether", "USDT", 6).transact({"from": accts[0]})
    )
    tok = aw3.eth.contract(address=rc.contractAddress, abi=eabi)
    await tok.functions.mint(accts[2], 42_000_000).transact({"from": accts[0]})
    bal = await AsyncErc20Collateral(aw3, rc.contractAddress, [accts[2]]).balances()
    assert bal[0].amount == Decimal(42) and bal[0].symbol == "USDT"


async def test_chainlink_feeds_drive_the_oracle_and_a_stale_feed_is_dropped(artifacts) -> None:  # type: ignore[no-untyped-def]
    from app.bus import Bus
    from app.clock import SimClock
    from app.engine.oracle import Oracle, OracleParams

    w3 = Web3(EthereumTesterProvider())
    tester = w3.provider.ethereum_tester
    aggs = [deploy(w3, artifacts["MockAggregator"], 8, f"BTC / USD {n}", 60_000 * E8) for n in range(3)]
    tester.mine_blocks(1)
    source = ChainlinkPriceSource(
        {f"btc_usd#{n}": ChainlinkFeed(w3, a.address, index="btc_usd", max_age_s=600) for n, a in enumerate(aggs)}
    )
    chain_now = lambda: int(w3.eth.get_block("latest")["timestamp"]) * 1000  # noqa: E731
    clock = SimClock(chain_now())
    bus = Bus()
    oracle = Oracle(clock, bus, OracleParams(max_age_ms=600_000, quorum=2))
    bus.on(("index_price",), oracle.on_source_event)
    index_events = bus.subscribe(("index_price",))
    poller = ChainlinkPoller(source, bus)

    for a, px in zip(aggs, (61_000, 61_010, 60_990)):
        a.functions.updateAnswer(px * E8).transact(owner(w3))
    await poller.poll_once()
    clock.set(chain_now())
    res = oracle.tick(["btc_usd"])[0]
    assert not res.stale and res.price == pytest.approx(61_000.0) and len(res.used) == 3
    # an hour later two feeds have moved, the third has not updated: it is dropped as stale, the index follows
    tester.time_travel(w3.eth.get_block("latest")["timestamp"] + 3600)
    aggs[0].functions.updateAnswer(62_000 * E8).transact(owner(w3))
    aggs[1].functions.updateAnswer(62_020 * E8).transact(owner(w3))
    published = await poller.poll_once()
    assert [p.stale for p in published] == [False, False, True]
    clock.set(chain_now())
    res = oracle.tick(["btc_usd"])[0]
    assert not res.stale and res.price == pytest.approx(62_010.0) and res.dropped == {published[2].source: "stale"}
    assert index_events.drain()[-1].price == pytest.approx(62_010.0)


def test_built_from_configuration_over_json_rpc(chain, artifacts) -> None:  # type: ignore[no-untyped-def]
    from connectors.onchain import collateral_from_config, connect_rpc, price_source_from_config

    w3, agg = chain
    token = deploy(w3, artifacts["MockERC20"], "USD Coin", "USDC", 6)
    wallet = w3.eth.accounts[4]
    token.functions.mint(wallet, 2_500_000).transact(owner(w3))
    w3.provider.ethereum_tester.mine_blocks(2)
    with EvmShim(w3.provider) as shim:
        remote = connect_rpc(shim.url)
        source = price_source_from_config(remote, {"btc_usd": agg.address}, confirmations=1, max_age_s=3600)
        assert source.feeds["btc_usd"].latest().price == 60_000.0
        coll = collateral_from_config(remote, {"USDC": token.address}, [wallet], confirmations=1)
        assert coll["USDC"].balances()[0].amount == Decimal("2.5")
    with pytest.raises(ChainError):
        connect_rpc("http://127.0.0.1:9")  # nothing listens there
