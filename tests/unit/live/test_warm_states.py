"""The states a worker remembers having written (`streams/live/warm_states.py`): trusted only under
this worker's last token, forgotten per partition, bounded in number.

With two processors on a real Redis in tests/integration/test_warm_states.py.
"""

from __future__ import annotations

from streams.core import CustomerState
from streams.live.warm_states import WarmStates


def _state(cid: str) -> CustomerState:
    return CustomerState(customer_id=cid, first_seen=0.0, last_seen=0.0)


def test_remembered_states_are_trusted_only_under_this_workers_last_token():
    warm = WarmStates(capacity=10)
    token = warm.new_token()
    a = _state("a")
    warm.remember(0, token, {"a": a}, replaced=None)
    assert warm.check(0, token) and warm.get(0, "a") is a
    assert warm.get(1, "a") is None, "a state is remembered for the partition it was written on"
    assert not warm.check(0, "someone-else:1")
    assert warm.get(0, "a") is None, "another writer's token forgets the partition"


def test_tokens_are_unique_across_workers_and_commits():
    first, second = WarmStates(10), WarmStates(10)
    tokens = {first.new_token(), first.new_token(), second.new_token(), second.new_token()}
    assert len(tokens) == 4


def test_a_commit_that_replaced_a_foreign_token_keeps_only_what_it_wrote():
    warm = WarmStates(capacity=10)
    mine = warm.new_token()
    warm.remember(0, mine, {"a": _state("a"), "b": _state("b")}, replaced=None)
    # Another worker wrote partition 0 between this worker's read and its commit.
    later = warm.new_token()
    c = _state("c")
    warm.remember(0, later, {"c": c}, replaced="someone-else:7")
    assert warm.check(0, later)
    assert warm.get(0, "a") is None and warm.get(0, "b") is None
    assert warm.get(0, "c") is c


def test_the_least_recently_written_go_first_past_the_capacity():
    warm = WarmStates(capacity=2)
    t1, t2, t3 = warm.new_token(), warm.new_token(), warm.new_token()
    warm.remember(0, t1, {"a": _state("a")}, replaced=None)
    warm.remember(0, t2, {"b": _state("b")}, replaced=t1)
    warm.remember(0, t3, {"a": _state("a"), "c": _state("c")}, replaced=t2)  # "a" written again: newest
    assert len(warm) == 2
    assert warm.get(0, "b") is None and warm.get(0, "a") is not None and warm.get(0, "c") is not None


def test_a_capacity_of_zero_remembers_nothing():
    warm = WarmStates(capacity=0)
    token = warm.new_token()
    warm.remember(0, token, {"a": _state("a")}, replaced=None)
    assert len(warm) == 0 and warm.get(0, "a") is None


def test_forgetting_partitions_keeps_the_others():
    warm = WarmStates(capacity=10)
    t0, t1 = warm.new_token(), warm.new_token()
    warm.remember(0, t0, {"a": _state("a")}, replaced=None)
    warm.remember(1, t1, {"b": _state("b")}, replaced=None)
    warm.forget_partitions([0])
    assert warm.get(0, "a") is None and not warm.check(0, t0)
    assert warm.check(1, t1) and warm.get(1, "b") is not None
