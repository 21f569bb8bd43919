"""The rule index kept up to date one chat at a time (`RuleBook.update`, `Arming.regroup`,
`AlertEngine.subscription_changed`) decides exactly as an index rebuilt from scratch."""

from __future__ import annotations

import ast
import gc
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bot
from bot import heap, rulebook
from bot.arming import LEVEL_RULES, Arming
from bot.derivatives import Derivatives
from bot.market import MarketState
from bot.model import FundingRate, OpenInterest, RuleState, Subscription, Thresholds
from bot.norms import Norms
from bot.rulebook import HYSTERESIS, MARKET, Group, RuleBook, StateKey
from bot.rules import Evaluation
from bot.snapshot import Snapshot
from tests.engine_builders import HOUR, MINUTE, T0, liq

ASSETS = ("BTC", "ETH", "SOL", "DOGE")
Decision = tuple[str, str, str]  # chat, rule, asset


def market_now() -> tuple[MarketState, Derivatives]:
    market = MarketState(T0 - HOUR)
    for minute, (base, usd) in enumerate(
        [("BTC", 4e6), ("ETH", 2e6), ("SOL", 9e5), ("BTC", 3e6), ("DOGE", 5e5)]
    ):
        market.add(liq(base, "long" if minute % 3 else "short", usd, T0 - minute * MINUTE))
    derivatives = Derivatives()
    derivatives.update_funding(
        FundingRate("binance", f"{base}USDT", base, rate, 8, None, None)
        for base, rate in zip(ASSETS, (0.0009, -0.0004, 0.0002, 0.0015), strict=True)
    )
    derivatives.load_history([(T0 - 2 * HOUR, base, 1e9) for base in ASSETS])
    derivatives.update_open_interest(
        [
            OpenInterest("binance", f"{base}USDT", base, usd, T0)
            for base, usd in zip(ASSETS, (1.12e9, 0.97e9, 1.3e9, 1.0e9), strict=True)
        ],
        T0,
    )
    market.advance(T0)
    return market, derivatives


def random_sub(rng: random.Random, number: int) -> Subscription:
    def maybe(value: float) -> float:
        return value if rng.random() < 0.7 else 0.0

    thresholds = Thresholds(
        window=rng.choice(("1h", "4h")),
        liq=maybe(rng.choice((1e6, 3e6, 5e6, 8e6, 2e7))),
        side=rng.choice((0.0, 0.6, 0.9)),
        funding=maybe(rng.choice((0.0001, 0.0005, 0.001))),
        oi=maybe(rng.choice((0.02, 0.05, 0.2))),
        whale=maybe(rng.choice((1e6, 5e6))),
        spike=0.0,
        cooldown=60.0,
    )
    watch = frozenset(rng.sample(ASSETS, rng.choice((0, 0, 1, 2))))
    mute = T0 + MINUTE if rng.random() < 0.1 else None
    return Subscription("telegram", f"c{number}", thresholds, watch, mute_until=mute)


def many_subs(rng: random.Random, chats: int) -> list[Subscription]:
    """`chats` chats, each with the settings of one of 1,000 `random_sub` draws (one draw per
    chat cost 1.8 s at 100,000 chats)."""
    drawn = [random_sub(rng, number) for number in range(1000)]
    return [
        Subscription("telegram", f"c{number}", s.thresholds, s.watch, mute_until=s.mute_until)
        for number, s in enumerate(rng.choices(drawn, k=chats))
    ]


def random_states(rng: random.Random, chats: int) -> dict[StateKey, RuleState]:
    states = {}
    for _ in range(chats):
        rule = rng.choice(LEVEL_RULES)
        asset = MARKET if rule in ("window", "spike") else rng.choice(ASSETS)
        key = (f"telegram:c{rng.randrange(chats)}", rule, asset)
        states[key] = RuleState(rng.random() < 0.3, T0 - rng.choice((10, 90)) * 60_000)
    return states


def decide(
    book: RuleBook, arming: Arming, states: dict[StateKey, RuleState]
) -> tuple[set[Decision], set[Decision], dict[StateKey, RuleState], float]:
    """A full pass's triggers, the level rules it would disarm, its re-arming, the whale
    minimum."""
    market, derivatives = market_now()
    snap = Snapshot(market, Norms(), derivatives, T0)
    plan = arming.rearm(snap, states, include_market_data=True)
    evaluation = Evaluation(book, snap, states, arming)
    list(evaluation.liquidation_steps([liq("ETH", "long", 2e6, T0)]))
    list(evaluation.funding_and_open_interest_steps())
    triggers = {(t.sub.key, t.rule, t.asset) for t in evaluation.triggers}
    fired = {
        (group.ladders[rule].subs[position].key, rule, asset)
        for rule, group, asset, position in evaluation.fired
    }
    return triggers, fired, plan.states, book.min_whale


def disarmed_chats(arming: Arming) -> set[Decision]:
    """(chat, rule, asset) of every disarmed ladder position."""
    return {
        (context.ladder.subs[position].key, rule, asset)
        for rule, contexts in arming.contexts.items()
        for (_, asset), context in contexts.items()
        for position in context.disarmed
    }


def assert_consistent(book: RuleBook, arming: Arming) -> None:
    """Each group's ladders are what its members would build, and each context covers its
    ladder's positions once (empty ones dropped), its level set by its highest disarmed one."""
    for group in book.groups:
        built = Group(group.window, group.watch, list(group.members.values()))
        for rule, ladder in group.ladders.items():
            other = built.ladders[rule]
            assert ladder.thresholds == other.thresholds
            assert ladder.subs == other.subs
            assert (ladder.sides, ladder.mutes) == (other.sides, other.mutes)
        assert all(book.group_of[key] is group for key in group.members)
    for rule, contexts in arming.contexts.items():
        for (group, _), context in contexts.items():
            assert context.ladder is group.ladders[rule]
            assert sorted(context.live + context.disarmed) == list(range(len(context.ladder.subs)))
            assert context.disarmed
            assert context.level == HYSTERESIS * context.ladder.thresholds[context.disarmed[-1]]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), changes=st.integers(1, 40))
def test_incremental_updates_decide_as_a_rebuild(
    seed: int, changes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many shards, shards filling and emptying (the same value for every example).
    monkeypatch.setattr(rulebook, "SHARD_SIZE", 3)
    rng = random.Random(seed)
    subs = {s.key: s for s in (random_sub(rng, n) for n in range(20))}
    states = random_states(rng, 20)
    book = RuleBook(subs.values())
    arming = Arming(book, states)
    for step in range(changes):
        number = rng.randrange(30)
        changed = random_sub(rng, number)
        if rng.random() < 0.25:
            changed = replace(changed, active=False)
        subs[changed.key] = changed
        arming.regroup(book.update(changed))
        if step % 7 == 3:  # a recorded pass between changes: its firings disarm, as committed
            market, derivatives = market_now()
            snap = Snapshot(market, Norms(), derivatives, T0)
            plan = arming.rearm(snap, states, include_market_data=True)
            evaluation = Evaluation(book, snap, states, arming)
            list(evaluation.liquidation_steps([]))
            list(evaluation.funding_and_open_interest_steps())
            states = states | plan.states
            states |= {
                (group.ladders[rule].subs[position].key, rule, asset): RuleState(False, T0)
                for rule, group, asset, position in evaluation.fired
            }
            arming.apply(plan)
            arming.disarm(evaluation.fired)
        active = [s for s in subs.values() if s.active]
        rebuilt = RuleBook(active)
        rebuilt_arming = Arming(rebuilt, states)
        assert decide(book, arming, states) == decide(rebuilt, rebuilt_arming, states)
        assert set(book.by_key) == {s.key for s in active}
        assert disarmed_chats(arming) == disarmed_chats(rebuilt_arming)
        assert_consistent(book, arming)


def test_a_change_moves_one_chat_and_its_disarmed_rule_in_its_ladder() -> None:
    def chat(name: str, liq: float) -> Subscription:
        return Subscription("telegram", name, Thresholds(liq=liq, funding=0, oi=0))

    a, b, c = chat("a", 1e6), chat("b", 3e6), chat("c", 8e6)
    book = RuleBook([c, a, b])
    arming = Arming(book, {("telegram:b", "window", MARKET): RuleState(False, T0)})
    (group,) = book.groups
    contexts = arming.contexts["window"]

    def window() -> tuple[list[str], list[int], list[int], float]:
        context = contexts[group, MARKET]
        names = [sub.chat_id for sub in group.liq.subs]
        return names, context.live, context.disarmed, context.level

    assert window() == (["a", "b", "c"], [0, 2], [1], 0.8 * 3e6)
    arming.regroup(book.update(chat("c", 2e6)))
    assert window() == (["a", "c", "b"], [0, 1], [2], 0.8 * 3e6)
    arming.regroup(book.update(chat("b", 5e5)))
    assert window() == (["b", "a", "c"], [1, 2], [0], 0.8 * 5e5)
    arming.regroup(book.update(replace(chat("b", 5e5), active=False)))
    assert [sub.chat_id for sub in group.liq.subs] == ["a", "c"]
    assert contexts == {}  # nothing disarmed left in the group
    arming.regroup(book.update(chat("b", 2e6)))  # back, at c's threshold: ties in key order
    assert window() == (["a", "b", "c"], [0, 2], [1], 0.8 * 2e6)
    assert book.groups == [group]
    assert_consistent(book, arming)


def test_a_settings_change_at_100k_chats_takes_under_5_ms() -> None:
    """Timed in this thread's CPU time: the machine is shared (bench/loop.py has wall time)."""
    rng = random.Random(7)
    with heap.bulk_build():  # as start-up builds it: no collection while it grows, then frozen
        subs = many_subs(rng, 100_000)
        states = random_states(rng, 100_000)
        book = RuleBook(subs)
        arming = Arming(book, states)
    timings = []
    try:
        for number in rng.sample(range(100_000), 200):
            changed = replace(subs[number], thresholds=replace(subs[number].thresholds, liq=2.5e6))
            if number % 5 == 0:
                changed = replace(changed, active=False)
            started = time.thread_time()
            arming.regroup(book.update(changed))
            timings.append(time.thread_time() - started)
    finally:
        gc.unfreeze()  # the rest of the session collects as usual
    timings.sort()
    assert timings[len(timings) // 2] < 0.005, f"median {timings[len(timings) // 2] * 1000:.2f} ms"


DECIDE_SIDE = ("rulebook", "snapshot", "arming", "rules", "engine")
LAYER = {name: rank for rank, name in enumerate(DECIDE_SIDE)}


@pytest.mark.parametrize("name", DECIDE_SIDE)
def test_the_decision_modules_import_bottom_up_and_read_no_private_fields(name: str) -> None:
    """rulebook -> snapshot -> arming -> rules -> engine: each imports only those before it,
    and reads no other object's `_private` attribute."""
    tree = ast.parse((Path(bot.__file__).parent / f"{name}.py").read_text())
    imported = {
        node.module.removeprefix("bot.")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot.")
    }
    assert {m for m in imported if LAYER.get(m, -1) >= LAYER[name]} == set()
    private_reads = [
        f"{ast.unparse(node)} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert private_reads == []
