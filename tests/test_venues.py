"""Each venue's parser on real-format frames: side meaning, notional and units pinned."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.model import Liquidation, OpenInterest
from bot.venues import binance, bybit, okx
from bot.venues.common import Control, Instrument, Tally, base_asset
from tests.conftest import load_frame
from tests.strategies import any_text

RECV = 1763700003000
CONTRACTS = {
    "BTC-USDT-SWAP": okx.Contract(ct_val=0.01, inverse=False),
    "BTC-USD-SWAP": okx.Contract(ct_val=100.0, inverse=True),
}


def summary(events: list[Liquidation] | None) -> list[tuple[object, ...]]:
    assert events is not None
    return [(e.venue, e.symbol, e.base, e.position, e.qty, e.price, e.usd, e.ts) for e in events]


def test_binance_sell_order_is_a_long_liquidated() -> None:
    events = binance.parse_liquidations(load_frame("binance_force_order.json"), RECV)
    assert summary(events) == [
        ("binance", "ETHUSDT", "ETH", "long", 12.5, 3021.44, 12.5 * 3021.44, 1763700000120)
    ]
    assert events is not None and events[0].recv_ts == RECV


def test_binance_buy_order_is_a_short_and_combined_stream_is_unwrapped() -> None:
    frame = load_frame("binance_force_order.json")
    frame["o"]["S"] = "BUY"
    wrapped = {"stream": "!forceOrder@arr", "data": frame}
    assert summary(binance.parse_liquidations(wrapped, RECV))[0][3] == "short"


def test_bybit_buy_is_a_long_liquidated_and_every_entry_is_read() -> None:
    events = bybit.parse_liquidations(load_frame("bybit_all_liquidation.json"), RECV)
    assert summary(events) == [
        ("bybit", "SOLUSDT", "SOL", "long", 840.0, 141.25, 840 * 141.25, 1763700001320),
        ("bybit", "SOLUSDT", "SOL", "short", 10.5, 141.90, 10.5 * 141.90, 1763700001410),
    ]


def test_okx_uses_contract_values_pos_side_and_every_detail() -> None:
    events = okx.parse_liquidations(load_frame("okx_liquidation_orders.json"), RECV, CONTRACTS)
    assert summary(events) == [
        ("okx", "BTC-USDT-SWAP", "BTC", "long", 2.5, 91250.5, 2.5 * 91250.5, 1763700002000),
        (
            "okx",
            "BTC-USDT-SWAP",
            "BTC",
            "short",
            4 * 0.01,
            91300.0,
            4 * 0.01 * 91300.0,
            1763700001900,
        ),
        ("okx", "BTC-USD-SWAP", "BTC", "short", 3000 / 91400, 91400.0, 3000.0, 1763700002100),
    ]


def test_okx_frame_for_an_unknown_instrument_is_ignored_and_named() -> None:
    tally = Tally()
    assert okx.parse_liquidations(load_frame("okx_liquidation_orders.json"), RECV, {}, tally) == []
    assert tally.unknown == {"BTC-USDT-SWAP", "BTC-USD-SWAP"} and tally.ignored == 2


@pytest.mark.parametrize(
    ("parse", "frame"),
    [
        (binance.parse_liquidations, {"result": None, "id": 1}),
        (bybit.parse_liquidations, {"success": True, "ret_msg": "pong", "op": "ping"}),
        (bybit.parse_liquidations, {"success": True, "ret_msg": "", "op": "subscribe"}),
    ],
)
def test_control_replies_carry_no_events(parse, frame) -> None:  # type: ignore[no-untyped-def]
    assert parse(frame, RECV) == []


def test_okx_subscribe_ack_is_control_and_error_is_a_refusal() -> None:
    assert okx.parse_liquidations({"event": "subscribe", "arg": {}}, RECV, CONTRACTS) == []
    error = {"event": "error", "code": "60018", "msg": "Wrong URL"}
    assert okx.parse_liquidations(error, RECV, CONTRACTS) == []
    assert okx.control(error) == Control(refused=("60018: Wrong URL",))


@pytest.mark.parametrize(
    "frame",
    [
        {
            "e": "forceOrder",
            "o": {"s": "BTCUSDT", "S": "SELL", "z": "0", "q": "0", "ap": "1", "p": "1", "T": 1},
        },
        {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "HOLD", "z": "1", "ap": "1", "T": 1}},
        {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "nan", "ap": "1", "T": 1}},
        [],
        "text",
    ],
)
def test_binance_malformed_frames_are_rejected(frame: object) -> None:
    assert binance.parse_liquidations(frame, RECV) is None


@pytest.mark.parametrize(
    ("parse", "frame"),
    [
        (binance.parse_liquidations, {"e": "markPriceUpdate", "s": "BTCUSDT"}),
        (binance.parse_liquidations, {"o": {}}),
        (bybit.parse_liquidations, {"topic": "tickers.BTCUSDT", "data": {}}),
        (bybit.parse_liquidations, {"topic": "allLiquidation.BTCUSDT", "data": []}),
        (bybit.parse_liquidations, {"type": "snapshot"}),
    ],
)
def test_other_event_types_and_empty_pushes_are_ignored_not_malformed(parse, frame) -> None:  # type: ignore[no-untyped-def]
    assert parse(frame, RECV) == []


def test_okx_other_channels_and_empty_pushes_are_ignored_not_malformed() -> None:
    for frame in (
        {"arg": {"channel": "tickers", "instId": "BTC-USDT-SWAP"}, "data": [{}]},
        {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": []},
        {"data": []},
    ):
        assert okx.parse_liquidations(frame, RECV, CONTRACTS) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "e",
                    "o",
                    "s",
                    "S",
                    "q",
                    "p",
                    "ap",
                    "z",
                    "T",
                    "data",
                    "topic",
                    "v",
                    "arg",
                    "channel",
                    "instId",
                    "details",
                    "sz",
                    "bkPx",
                    "side",
                    "posSide",
                    "ts",
                    "op",
                    "success",
                    "event",
                    "stream",
                    "result",
                    "id",
                ]
            ),
            children,
            max_size=8,
        )
    ),
    max_leaves=30,
)


@given(json_values)
def test_parsers_never_raise_on_arbitrary_json(value: object) -> None:
    for result in (
        binance.parse_liquidations(value, RECV),
        bybit.parse_liquidations(value, RECV),
        okx.parse_liquidations(value, RECV, CONTRACTS),
    ):
        assert result is None or all(e.usd > 0 and e.position in ("long", "short") for e in result)


@given(any_text(max_size=40))
def test_parsers_never_raise_on_arbitrary_text_decoded_as_json(text: str) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        return
    binance.parse_liquidations(value, RECV)
    bybit.parse_liquidations(value, RECV)
    okx.parse_liquidations(value, RECV, CONTRACTS)


@pytest.mark.parametrize(
    ("symbol", "base"),
    [
        ("BTCUSDT", "BTC"),
        ("ETHUSDC", "ETH"),
        ("BTC-USDT-SWAP", "BTC"),
        ("BTC-USD-SWAP", "BTC"),
        ("BTCPERP", "BTC"),
        ("1000PEPEUSDT", "PEPE"),
        ("PEPE-USDT-SWAP", "PEPE"),
        ("1INCHUSDT", "1INCH"),
        ("BTCUSDT_251226", "BTC"),
        ("1000000MOGUSDT", "MOG"),
        ("BTCUSD", "BTC"),
    ],
)
def test_base_asset_agrees_across_venues(symbol: str, base: str) -> None:
    assert base_asset(symbol) == base


# -- Real recorded payloads (tests/data/<venue>/PROVENANCE says where each comes from) ---------

DATA = Path(__file__).parent / "data"


def real(name: str) -> Any:
    return json.loads((DATA / name).read_text())


BINANCE_UNIVERSE = binance.parse_exchange_info(real("binance/exchange_info.json"))
PREMIUM_INDEX = real("binance/premium_index_all.json")


def test_binance_universe_is_trading_perpetuals_of_the_real_exchange_info() -> None:
    listed = real("binance/exchange_info.json")["symbols"]
    assert len(listed) == 647
    assert len(BINANCE_UNIVERSE) == 552
    statuses = {s["symbol"]: (s["contractType"], s["status"]) for s in listed}
    assert statuses["EOSUSDT"] == ("PERPETUAL", "SETTLING") and "EOSUSDT" not in BINANCE_UNIVERSE
    assert not [s for s in BINANCE_UNIVERSE if "_" in s]  # no delivery contract
    assert BINANCE_UNIVERSE["ETHBTC"] == Instrument("ETHBTC", "ETH", "BTC")


def test_binance_premium_index_gives_funding_only_for_the_universe() -> None:
    rates = binance.parse_premium_index(PREMIUM_INDEX, {}, BINANCE_UNIVERSE)
    listed = {entry["symbol"] for entry in PREMIUM_INDEX}
    assert len(PREMIUM_INDEX) == 521
    assert {r.symbol for r in rates} == listed & set(BINANCE_UNIVERSE)
    assert len(rates) == 454
    symbols = {r.symbol for r in rates}
    # Delivery contracts (rate 0, nextFundingTime 0) and delisted symbols (rate 0) are gone...
    assert not symbols & {"BTCUSDT_250627", "ETHUSDT_250926", "OCEANUSDT", "FTMUSDT", "AGIXUSDT"}
    # ...while a live perpetual whose rate is exactly 0 stays.
    bnb = next(r for r in rates if r.symbol == "BNBUSDT")
    assert bnb.rate == 0.0 and bnb.interval_hours == 8.0


def test_binance_coin_quoted_pair_has_its_real_base_and_a_usd_mark_price() -> None:
    rates = {r.symbol: r for r in binance.parse_premium_index(PREMIUM_INDEX, {}, BINANCE_UNIVERSE)}
    btc_usd = next(float(e["markPrice"]) for e in PREMIUM_INDEX if e["symbol"] == "BTCUSDT")
    assert rates["ETHBTC"].base == "ETH"
    assert rates["ETHBTC"].mark_price == pytest.approx(0.02414940 * btc_usd)
    assert rates["ETHUSDT"].mark_price == 2575.46


def test_binance_intervals_follow_the_settlement_grid_of_the_real_dump() -> None:
    # At 08:38 UTC (the dump's time) an 8 h symbol next settles at 16:00; 303 symbols settle at
    # 12:00 and 12 at 09:00 (277 and 11 of them in the universe): they are on 4 and 1 h.
    rates = binance.parse_premium_index(PREMIUM_INDEX, {}, BINANCE_UNIVERSE)
    by_symbol = {r.symbol: r for r in rates}
    assert Counter(r.interval_hours for r in rates) == {4.0: 277, 8.0: 166, 1.0: 11}
    assert by_symbol["KAVAUSDT"].interval_hours == 8.0
    assert by_symbol["DIAUSDT"].interval_hours == 4.0
    assert by_symbol["DIAUSDT"].rate_8h == pytest.approx(0.00005 * 2)
    # fundingInfo lists adjusted symbols, 8 h ones too (GTCUSDT; BTCUSDT's disclaimer row with
    # updateTime null); its interval is used when it fits the grid.
    intervals = binance.parse_funding_intervals(real("binance/funding_info_docs.json"))
    assert intervals == {"BLZUSDT": 8.0}
    rows = binance.parse_funding_intervals(real("binance/funding_info_rows.json"))
    assert rows == {"GTCUSDT": 8.0, "LPTUSDT": 4.0, "BTCUSDT": 8.0}
    listed = {
        r.symbol: r.interval_hours
        for r in binance.parse_premium_index(PREMIUM_INDEX, rows, BINANCE_UNIVERSE)
    }
    assert (listed["GTCUSDT"], listed["BTCUSDT"]) == (8.0, 8.0)
    # The fundingInfo rows are a month younger than the dump, in which LPTUSDT settles at 09:00:
    # off the 4 h grid, so 1 h (what it was then) rather than fundingInfo's 4 h.
    assert listed["LPTUSDT"] == 1.0
    assert binance.funding_interval(1750176000000, 4.0) == 4.0
    assert binance.funding_interval(1750161600000, 8.0) == 4.0
    assert binance.funding_interval(1750150800003, None) == 1.0


def test_bybit_universe_is_trading_linear_perpetuals() -> None:
    trading, cursor = bybit.parse_instruments_page(
        bybit.unwrap(real("bybit/instruments_linear_docs.json"))
    )
    assert trading == [Instrument("BTCUSDT", "BTC", "USDT")] and cursor == ""
    pre_launch, _ = bybit.parse_instruments_page(
        bybit.unwrap(real("bybit/instruments_prelaunch_docs.json"))
    )
    assert pre_launch == []  # BIOUSDT, status PreLaunch: a pre-market contract


def test_bybit_open_interest_falls_back_to_half_of_both_sides() -> None:
    row = real("bybit/ws_ticker_linear.json")["data"]
    assert "singleOpenInterestValue" not in row
    universe = {"BTCUSDT": Instrument("BTCUSDT", "BTC", "USDT")}
    rates, interests = bybit.parse_tickers({"list": [row]}, RECV, universe)
    assert interests == [OpenInterest("bybit", "BTCUSDT", "BTC", 1183601235.91 / 2, RECV)]
    assert [(r.symbol, r.rate, r.interval_hours) for r in rates] == [("BTCUSDT", -0.000212, 8.0)]


def test_bybit_tickers_outside_the_universe_make_no_rows() -> None:
    result = bybit.unwrap(real("bybit/tickers_inverse_docs.json"))  # BTCUSD, an inverse contract
    universe = {"BTCUSDT": Instrument("BTCUSDT", "BTC", "USDT")}
    assert bybit.parse_tickers(result, RECV, universe) == ([], [])


def test_bybit_push_with_one_bad_entry_keeps_the_good_one() -> None:
    frame = real("bybit/all_liquidation.json")
    good = frame["data"][0]
    frame["data"].append({**good, "v": ""})  # the same entry with its size missing
    tally = Tally()
    events = bybit.parse_liquidations(frame, RECV, tally)
    assert summary(events) == [
        ("bybit", "ROSEUSDT", "ROSE", "short", 20000.0, 0.04499, 20000 * 0.04499, 1739502302929)
    ]
    assert tally.malformed == 1


def test_bybit_subscribe_replies() -> None:
    ack, failure = real("bybit/subscribe_ack.json"), real("bybit/subscribe_failure.json")
    assert bybit.parse_liquidations(ack, RECV) == [] and bybit.control(ack) is None
    assert bybit.parse_liquidations(failure, RECV) == []
    assert bybit.control(failure) == Control(refused=("invalid.topic.BTCUSDT",))


def test_bybit_args_length_is_the_json_text_of_the_args() -> None:
    # Real symbol names include non-ASCII ones (币安人生USDT), counted in characters.
    topics = [bybit.topic(s) for s in sorted(BINANCE_UNIVERSE)]
    compact = json.dumps(topics, separators=(",", ":"), ensure_ascii=False)
    assert (
        bybit.args_length(topics) + 1 == len(compact) == 14340
    )  # + 1: the brackets, no last comma


OKX_CONTRACTS = okx.parse_instruments(okx.unwrap(real("okx/instruments_swap.json")))


def test_okx_instruments_are_live_swaps_with_their_contract_values() -> None:
    assert {
        "BTC-USD-SWAP": okx.Contract(100.0, inverse=True),
        "ETH-USDT-SWAP": okx.Contract(0.1, inverse=False),
        "BTC-USDT-SWAP": okx.Contract(0.01, inverse=False),
    } == OKX_CONTRACTS


def test_okx_push_for_an_instrument_newer_than_the_list_keeps_the_known_entries() -> None:
    frame = real("okx/liquidation_orders_docs.json")  # IOST-USDT-SWAP: not in the list
    listed = {**frame["data"][0], "instId": "ETH-USDT-SWAP"}  # the same entry, on a listed swap
    frame["data"].append(listed)
    tally = Tally()
    events = okx.parse_liquidations(frame, RECV, OKX_CONTRACTS, tally)
    assert summary(events) == [
        (
            "okx",
            "ETH-USDT-SWAP",
            "ETH",
            "short",
            13 * 0.1,
            0.007831,
            13 * 0.1 * 0.007831,
            1692266434010,
        )
    ]
    assert tally.unknown == {"IOST-USDT-SWAP"} and tally.ignored == 1 and tally.malformed == 0


def test_okx_notice_64008_asks_for_an_early_reconnect() -> None:
    notice = real("okx/notice_64008.json")
    assert okx.parse_liquidations(notice, RECV, OKX_CONTRACTS) == []
    assert okx.control(notice) == Control(
        reconnect="notice 64008: The connection will soon be closed for a service upgrade."
        " Please reconnect."
    )


def test_okx_funding_interval_is_the_gap_between_settlements() -> None:
    data = okx.unwrap(real("okx/funding_rate_docs.json"))
    [rate] = okx.parse_funding_rates(data, OKX_CONTRACTS)
    assert (rate.symbol, rate.rate, rate.interval_hours) == (
        "BTC-USDT-SWAP",
        0.0000182221218054,
        8.0,
    )
    # A row outside the live swaps (an X-Perps FUTURES row of `instId=ANY`) makes no funding row.
    x_perp = {**data[0], "instId": "XAU-USD_UM_XPERP", "instType": "FUTURES"}
    assert okx.parse_funding_rates([x_perp], OKX_CONTRACTS) == []


def test_okx_any_answer_gives_real_intervals_and_no_row_for_x_perps() -> None:
    data = okx.unwrap(real("okx/funding_rate_any_rows.json"))
    assert [row["instType"] for row in data] == ["SWAP", "SWAP", "SWAP", "FUTURES"]
    live = {
        inst_id: okx.Contract(1.0, inverse=False)
        for inst_id in ("BTC-USDT-SWAP", "OKB-USDT-SWAP", "ONE-USDT-SWAP")
    }
    rates = okx.parse_funding_rates(data, live)
    assert [(r.symbol, r.interval_hours, r.rate_8h) for r in rates] == [
        ("BTC-USDT-SWAP", 8.0, 0.0001),
        ("OKB-USDT-SWAP", 4.0, 0.0001),
        ("ONE-USDT-SWAP", 1.0, -0.0018087460514744 * 8),
    ]
    # Even if an X-Perps id were in the list, its FUTURES row is not a perpetual swap's.
    x_perp = {"XAU-USD_UM_XPERP-310502": okx.Contract(1.0, inverse=False)}
    assert okx.parse_funding_rates(data, x_perp) == []
