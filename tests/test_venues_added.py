"""Gate, Bitget, Deribit and Hyperliquid parsers on payloads recorded from the real venues
(tests/data/<venue>/PROVENANCE): side meaning, notional units and what is left out, pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.config import settings_from_dict
from bot.model import FundingRate, Liquidation, OpenInterest
from bot.sources import SOURCE_TYPES
from bot.status import build_status, render_status
from bot.venues import bitget, deribit, gate, hyperliquid
from bot.venues.catalog import VENUES
from bot.venues.common import Control, Instrument, Tally, base_asset
from storage import open_database

DATA = Path(__file__).parent / "data"
RECV = 1777358900000
NOW = 1777358900123


def load(venue: str, name: str) -> Any:
    return json.loads((DATA / venue / name).read_text())


def summary(events: list[Liquidation] | None) -> list[tuple[object, ...]]:
    assert events is not None
    return [(e.venue, e.symbol, e.base, e.position, e.qty, e.price, e.usd, e.ts) for e in events]


def test_every_venue_symbol_of_bitcoin_merges_as_btc() -> None:
    names = ["BTC_USDT", "BTC-PERPETUAL", "BTC_USDC-PERPETUAL", "BTCUSDT", "BTC-USDT-SWAP"]
    assert {base_asset(name) for name in names} == {"BTC"}
    assert hyperliquid.base("BTC") == "BTC"
    assert hyperliquid.base("kPEPE") == "PEPE" == base_asset("1000PEPEUSDT")


# -- Gate -------------------------------------------------------------------------------------

GATE_CONTRACTS = {"BTC_USDT": gate.Contract(multiplier=0.0001)}


def test_gate_negative_size_sells_so_a_long_and_usd_uses_the_quanto_multiplier() -> None:
    events = gate.parse_liquidations(
        load("gate", "public_liquidates_docs.json"), RECV, GATE_CONTRACTS
    )
    assert summary(events) == [
        (
            "gate",
            "BTC_USDT",
            "BTC",
            "long",
            124.5 * 0.0001,
            215.1,
            124.5 * 0.0001 * 215.1,
            1541486601123,
        ),
        (
            "gate",
            "BTC_USDT",
            "BTC",
            "long",
            10.5 * 0.0001,
            215.2,
            10.5 * 0.0001 * 215.2,
            1541486601456,
        ),
    ]


def test_gate_integer_sizes_and_second_timestamps_of_older_pushes() -> None:
    events = gate.parse_liquidations(
        load("gate", "public_liquidates_integer_docs.json"), RECV, GATE_CONTRACTS
    )
    assert [(e.qty, e.position) for e in events or []] == [
        (124 * 0.0001, "long"),
        (10 * 0.0001, "long"),
    ]
    older = gate.parse_liquidations(
        load("gate", "public_liquidates_before_2026_08_docs.json"), RECV, GATE_CONTRACTS
    )
    assert [e.ts for e in older or []] == [1541486601000]


def test_gate_positive_size_is_a_short_and_unknown_contracts_are_ignored() -> None:
    frame = load("gate", "public_liquidates_docs.json")
    frame["result"][0]["size"] = "3"
    frame["result"][1]["contract"] = "NEW_USDT"
    tally = Tally()
    events = gate.parse_liquidations(frame, RECV, GATE_CONTRACTS, tally)
    assert [e.position for e in events or []] == ["short"]
    assert (tally.ignored, tally.unknown, tally.malformed) == (1, {"NEW_USDT"}, 0)


def test_gate_zero_or_missing_size_is_malformed_and_acks_are_not() -> None:
    frame = load("gate", "public_liquidates_docs.json")
    frame["result"][0]["size"] = "0"
    del frame["result"][1]["price"]
    assert gate.parse_liquidations(frame, RECV, GATE_CONTRACTS) is None
    ack = {
        "time": 1,
        "channel": gate.CHANNEL,
        "event": "subscribe",
        "result": {"status": "success"},
    }
    pong = {"time": 1, "channel": "futures.pong", "event": "", "result": None}
    assert gate.parse_liquidations(ack, RECV, GATE_CONTRACTS) == []
    assert gate.parse_liquidations(pong, RECV, GATE_CONTRACTS) == []
    assert gate.control(ack) is None
    refused = {**ack, "error": {"code": 2, "message": "unknown contract"}, "result": None}
    assert gate.control(refused) == Control(refused=(f"{gate.CHANNEL}: unknown contract",))


def test_gate_contracts_give_multipliers_funding_per_seconds_interval_and_one_side_oi() -> None:
    payload = load("gate", "contracts_ccxt.json")
    contracts = gate.parse_contracts(payload)
    assert contracts == {"BTC_USDT": gate.Contract(0.0001)}
    assert gate.parse_funding(payload, contracts) == [
        FundingRate("gate", "BTC_USDT", "BTC", 0.002053, 8.0, 37985.6, 1610035200000)
    ]
    assert gate.parse_open_interest(payload, contracts, NOW) == [
        OpenInterest("gate", "BTC_USDT", "BTC", 5223816 * 0.0001 * 37985.6, NOW)
    ]
    payload[0]["in_delisting"] = True
    assert gate.parse_contracts(payload) == {}


# -- Bitget -----------------------------------------------------------------------------------

BITGET_UNIVERSE = {
    "APEUSDT": Instrument("APEUSDT", "APE", "USDT"),
    "IPUSDT": Instrument("IPUSDT", "IP", "USDT"),
}


def test_bitget_buy_is_a_long_and_amount_is_the_usdt_value() -> None:
    events = bitget.parse_liquidations(
        load("bitget", "liquidation_tardis.json"), RECV, BITGET_UNIVERSE
    )
    assert summary(events) == [
        ("bitget", "APEUSDT", "APE", "long", 13.70319 / 0.1649, 0.1649, 13.70319, 1777358886549),
        (
            "bitget",
            "IPUSDT",
            "IP",
            "long",
            143.330431857868 / 0.500280739469,
            0.500280739469,
            143.330431857868,
            1777358876983,
        ),
    ]
    # amount / price is a whole lot: the quantity; amount itself is the value
    assert [round(e.qty, 6) for e in events or []] == [83.1, 286.5]


def test_bitget_sell_is_a_short_and_pairs_outside_the_universe_are_ignored() -> None:
    frame = load("bitget", "liquidation_tardis.json")
    frame["data"][0]["side"] = "sell"
    tally = Tally()
    events = bitget.parse_liquidations(frame, RECV, {"APEUSDT": BITGET_UNIVERSE["APEUSDT"]}, tally)
    assert [(e.symbol, e.position) for e in events or []] == [("APEUSDT", "short")]
    assert (tally.ignored, tally.malformed) == (1, 0)


def test_bitget_control_frames_and_malformed_entries() -> None:
    ack = {"event": "subscribe", "arg": {"instType": "usdt-futures", "topic": "liquidation"}}
    error = {"event": "error", "arg": {}, "code": 30001, "msg": "doesn't exist"}
    assert bitget.parse_liquidations(ack, RECV, BITGET_UNIVERSE) == []
    assert bitget.control(ack) is None
    assert bitget.control(error) == Control(refused=("30001: doesn't exist",))
    frame = load("bitget", "liquidation_tardis.json")
    frame["data"][0]["side"] = "long"  # not a Bitget side
    tally = Tally()
    assert len(bitget.parse_liquidations(frame, RECV, BITGET_UNIVERSE, tally) or []) == 1
    assert tally.malformed == 1


def test_bitget_contracts_keep_perpetuals_and_tickers_value_oi_in_coin() -> None:
    universe = bitget.parse_contracts(bitget.unwrap(load("bitget", "contracts_nautilus.json")))
    assert universe == {"BTCUSDT": Instrument("BTCUSDT", "BTC", "USDT")}  # ETHUSDT is delivery
    tickers = bitget.unwrap(load("bitget", "tickers_docs.json"))
    rates, interests = bitget.parse_tickers(
        tickers, {"BTCUSD": Instrument("BTCUSD", "BTC", "USD")}, {"BTCUSD": 4.0}, NOW
    )
    assert rates == [FundingRate("bitget", "BTCUSD", "BTC", -0.0007, 4.0, 12345.0, None)]
    assert rates[0].rate_8h == -0.0014
    assert interests == [OpenInterest("bitget", "BTCUSD", "BTC", 125.6844 * 12345, NOW)]
    assert bitget.parse_funding_intervals([{"symbol": "BTCUSDT", "fundingRateInterval": "4"}]) == {
        "BTCUSDT": 4.0
    }


# -- Deribit ----------------------------------------------------------------------------------


def test_deribit_taker_sell_and_maker_under_a_buy_are_longs_in_usd_on_inverse() -> None:
    taker, maker = load("deribit", "trades_liquidation_tardis.json")
    assert summary(deribit.parse_liquidations(taker, RECV)) == [
        ("deribit", "BTC-PERPETUAL", "BTC", "long", 1120 / 4469.5, 4469.5, 1120.0, 1584058044032)
    ]
    assert summary(deribit.parse_liquidations(maker, RECV)) == [
        ("deribit", "BTC-PERPETUAL", "BTC", "long", 2500 / 4458.5, 4458.5, 2500.0, 1584058067675)
    ]


def test_deribit_both_sides_liquidated_is_a_long_and_a_short() -> None:
    frame = load("deribit", "trades_liquidation_tardis.json")[0]
    frame["params"]["data"][0]["liquidation"] = "MT"
    events = deribit.parse_liquidations(frame, RECV)
    assert [(e.position, e.usd) for e in events or []] == [("long", 1120.0), ("short", 1120.0)]
    frame["params"]["data"][0]["liquidation"] = "T"
    frame["params"]["data"][0]["direction"] = "buy"
    assert [e.position for e in deribit.parse_liquidations(frame, RECV) or []] == ["short"]


def test_deribit_linear_usdc_amounts_are_coin_and_dated_futures_are_ignored() -> None:
    frame = load("deribit", "trades_liquidation_tardis.json")[0]
    row = frame["params"]["data"][0]
    row.update(instrument_name="SOL_USDC-PERPETUAL", amount=12.5, price=141.2)
    dated = {**row, "instrument_name": "BTC-27MAR26"}
    frame["params"]["data"].append(dated)
    tally = Tally()
    events = deribit.parse_liquidations(frame, RECV, tally)
    assert summary(events) == [
        ("deribit", "SOL_USDC-PERPETUAL", "SOL", "long", 12.5, 141.2, 12.5 * 141.2, 1584058044032)
    ]
    assert tally.ignored == 1


def test_deribit_plain_trades_prove_the_feed_and_heartbeats_are_answered() -> None:
    plain = load("deribit", "trades_100ms_nautilus.json")
    assert deribit.parse_liquidations(plain, RECV) == []
    assert deribit.is_feed(plain) is True
    request = load("deribit", "test_request_nautilus.json")
    assert deribit.parse_liquidations(request, RECV) == []
    assert deribit.is_feed(request) is False
    assert deribit.control(request) == Control(reply=(deribit.TEST_FRAME,))
    assert json.loads(deribit.TEST_FRAME)["method"] == "public/test"
    assert deribit.control(load("deribit", "subscribe_response_nautilus.json")) is None
    assert deribit.control(load("deribit", "error_nautilus.json")) == Control(
        refused=("10028: too_many_requests",)
    )


def test_deribit_subscribes_to_heartbeats_then_non_raw_trade_channels() -> None:
    heartbeat, subscribe = (json.loads(frame) for frame in deribit.subscribe_frames())
    assert heartbeat["method"] == "public/set_heartbeat"
    assert heartbeat["params"]["interval"] >= 10
    channels = subscribe["params"]["channels"]
    assert channels == [
        "trades.future.BTC.100ms",
        "trades.future.ETH.100ms",
        "trades.future.USDC.100ms",
    ]
    assert not any(channel.endswith(".raw") for channel in channels)


def test_deribit_book_summaries_keep_perpetuals_with_8h_funding() -> None:
    result = deribit.unwrap(load("deribit", "book_summary_future.json"))
    rates, interests = deribit.parse_book_summaries(result, NOW)
    assert rates == [FundingRate("deribit", "BTC-PERPETUAL", "BTC", 0.01520525, 8.0, 3940.06, None)]
    assert interests == [OpenInterest("deribit", "BTC-PERPETUAL", "BTC", 0.12759952124659626, NOW)]
    linear = [{"instrument_name": "ETH_USDC-PERPETUAL", "mark_price": 3000.0, "open_interest": 2.0}]
    assert deribit.parse_book_summaries(linear, NOW) == (
        [],
        [OpenInterest("deribit", "ETH_USDC-PERPETUAL", "ETH", 6000.0, NOW)],
    )


# -- Hyperliquid ------------------------------------------------------------------------------


def test_hyperliquid_funding_is_hourly_and_oi_is_coin_times_mark_without_delisted() -> None:
    rates, interests = hyperliquid.parse(load("hyperliquid", "meta_and_asset_ctxs.json"), NOW)
    assert [(r.symbol, r.rate, r.interval_hours, r.mark_price) for r in rates] == [
        ("BTC", -0.0000015186, 1.0, 77562.0),
        ("ETH", 0.0000125, 1.0, 2123.7),
        ("ATOM", 0.0000125, 1.0, 2.1315),
    ]
    assert rates[1].rate_8h == 0.0000125 * 8
    assert interests == [
        OpenInterest("hyperliquid", "BTC", "BTC", 27353.17682 * 77562.0, NOW),
        OpenInterest("hyperliquid", "ETH", "ETH", 605822.2557999999 * 2123.7, NOW),
        OpenInterest("hyperliquid", "ATOM", "ATOM", 1485517.8400000001 * 2.1315, NOW),
    ]


def test_every_catalog_venue_has_a_source_and_a_test_data_folder() -> None:
    assert list(SOURCE_TYPES) == list(VENUES)
    assert all((DATA / name / "PROVENANCE").is_file() for name in VENUES)


def test_chat_status_says_which_venues_a_figure_covers_and_which_are_sampled() -> None:
    status = build_status(open_database(":memory:"), settings_from_dict({}), NOW)
    assert set(status["liquidations"]["1h"]["by_exchange"]) == {
        "binance",
        "bybit",
        "okx",
        "gate",
        "bitget",
        "deribit",
    }
    assert list(status["sources"]) == list(VENUES)
    text = render_status(status, windows=("1h", "24h"))  # what /status in a chat sends
    coverage = text[text.index("Coverage:") :].splitlines()
    assert coverage == [
        "Coverage:",
        "  Liquidation totals: Binance, Bybit, OKX, Gate, Bitget, Deribit",
        "  Sampled, so totals are lower bounds: "
        "Binance: at most the latest liquidation per symbol per second; "
        "OKX: OKX says its feed does not represent the total; "
        "Bitget: only the largest long and the largest short per pair per second",
        "  Funding and open interest: Binance, Bybit, OKX, Gate, Bitget, Deribit, Hyperliquid",
    ]
    only_bybit = settings_from_dict(
        {"exchanges": {name: {"enabled": name in ("bybit", "gate")} for name in VENUES}}
    )
    narrow = render_status(build_status(open_database(":memory:"), only_bybit, NOW))
    assert "  Liquidation totals: Bybit, Gate\n" in narrow
    assert "lower bounds" not in narrow
