"""Each venue's parser on real-format frames: side meaning, notional and units pinned."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.events import Liquidation
from bot.venues import binance, bybit, okx
from bot.venues.common import base_asset
from tests.conftest import load_frame

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


def test_okx_frame_for_an_unknown_instrument_is_rejected() -> None:
    assert okx.parse_liquidations(load_frame("okx_liquidation_orders.json"), RECV, {}) is None


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


def test_okx_subscribe_ack_is_control_and_error_is_unexpected() -> None:
    assert okx.parse_liquidations({"event": "subscribe", "arg": {}}, RECV, CONTRACTS) == []
    assert okx.parse_liquidations({"event": "error", "code": "60018"}, RECV, CONTRACTS) is None


@pytest.mark.parametrize(
    "frame",
    [
        {
            "e": "forceOrder",
            "o": {"s": "BTCUSDT", "S": "SELL", "z": "0", "q": "0", "ap": "1", "p": "1", "T": 1},
        },
        {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "HOLD", "z": "1", "ap": "1", "T": 1}},
        {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "nan", "ap": "1", "T": 1}},
        {"e": "markPriceUpdate"},
        [],
        "text",
    ],
)
def test_binance_malformed_frames_are_rejected(frame: object) -> None:
    assert binance.parse_liquidations(frame, RECV) is None


def test_bybit_failed_subscription_is_unexpected() -> None:
    frame = {"success": False, "ret_msg": "error:handler not found", "op": "subscribe"}
    assert bybit.parse_liquidations(frame, RECV) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
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


@given(st.text(max_size=40))
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
