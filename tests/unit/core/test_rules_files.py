"""Rules and playbook files written by people: each kind of mistake is refused with a message naming
the file, the line and what is wrong; and what a user may change (a threshold, a type turned off,
a new trait) shows through the core.

The expected line of each mistake is found in the file's own text, not copied from a message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenarios import Journey, ts

from streams.core import apply_event
from streams.core.model import Model, load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE, PlaybookError, load_playbook
from streams.core.rules.compiled import DEFAULT_RULES, RulesError, load_rules

BASE = """\
version: 1
settings:
  home_countries: [PT]
  home_languages: [pt]
lifecycle:
  - type: new
    description: Paid at least once.
    when: {signal: purchases, gte: 1}
  - type: prospect
    when: {all: []}
traits:
  - type: thrifty
    when: {signal: coupon_share, gte: 0.5}
"""

PLAYBOOK = """\
version: 1
actions:
  hello: {channel: email, kind: marketing, cooldown_days: 1}
  coupon: {channel: email, kind: promotion, cooldown_days: 1}
triggers:
  new: [hello]
  thrifty: [coupon]
"""


def line_of(text: str, marker: str) -> int:
    """The 1-based line of the only line containing `marker`."""
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if marker in line]
    assert len(lines) == 1, f"{marker!r} on lines {lines}"
    return lines[0]


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rules_error(tmp_path: Path, name: str, text: str) -> str:
    with pytest.raises(RulesError) as info:
        load_rules(write(tmp_path, name, text))
    return str(info.value)


def playbook_error(tmp_path: Path, name: str, text: str, rules_text: str = BASE) -> str:
    rules = write(tmp_path, "rules.yaml", rules_text)
    with pytest.raises(PlaybookError) as info:
        load_model(rules, write(tmp_path, name, text))
    return str(info.value)


def test_the_base_files_are_good(tmp_path):
    model = load_model(write(tmp_path, "rules.yaml", BASE), write(tmp_path, "playbook.yaml", PLAYBOOK))
    assert [r.type for r in model.rules.lifecycle] == ["new", "prospect"]
    assert model.type_names == {"new", "prospect", "thrifty"}


# --------------------------------------------------------------------------- bad rules files


def test_unknown_field(tmp_path):
    text = edit(
        BASE, "    description: Paid at least once.\n", "    description: Paid at least once.\n    colour: blue\n"
    )
    message = rules_error(tmp_path, "colour.yaml", text)
    assert message.startswith(f"colour.yaml line {line_of(text, 'colour:')}: ")
    assert "lifecycle.0.colour: unknown field" in message
    assert "allowed here: type, description, enabled, when" in message


def test_unknown_field_with_a_close_name(tmp_path):
    text = edit(BASE, "traits:\n", "trait:\n")
    message = rules_error(tmp_path, "typo.yaml", text)
    assert f"typo.yaml line {line_of(text, 'trait:')}: trait: unknown field (did you mean 'traits'?" in message
    text = edit(BASE, "{signal: coupon_share, gte: 0.5}", "{signal: coupon_share, gtee: 0.5}")
    message = rules_error(tmp_path, "op.yaml", text)
    assert f"op.yaml line {line_of(text, 'gtee')}: traits.0.when.gtee: unknown field (did you mean 'gte'?" in message


def test_unknown_lifecycle_type(tmp_path):
    text = edit(BASE, "  - type: new\n", "  - type: freeloader\n")
    message = rules_error(tmp_path, "types.yaml", text)
    assert message.startswith(f"types.yaml line {line_of(text, 'freeloader')}: lifecycle.0.type: ")
    assert "'freeloader'" in message
    for known in ("prospect", "free_user", "new", "loyal", "advocate", "at_risk", "lapsed"):
        assert f"'{known}'" in message


def test_a_trait_may_not_take_a_lifecycle_name(tmp_path):
    text = edit(BASE, "  - type: thrifty\n", "  - type: loyal\n")
    message = rules_error(tmp_path, "clash.yaml", text)
    assert f"clash.yaml line {line_of(text, 'type: loyal')}: traits.0.type: " in message
    assert "'loyal' is a lifecycle type, not a trait" in message


def test_text_where_a_number_is_needed(tmp_path):
    text = edit(BASE, "{signal: purchases, gte: 1}", "{signal: purchases, gte: lots}")
    message = rules_error(tmp_path, "text.yaml", text)
    assert message.startswith(f"text.yaml line {line_of(text, 'lots')}: lifecycle.0.when.gte: ")
    assert "valid number" in message and "'lots'" in message


def test_gte_on_a_true_false_signal(tmp_path):
    text = edit(BASE, "{signal: coupon_share, gte: 0.5}", "{signal: free_plan, gte: 1}")
    message = rules_error(tmp_path, "bool.yaml", text)
    assert message == (
        f"bool.yaml line {line_of(text, 'free_plan')}: traits.0.when: signal 'free_plan' is true "
        "or false: compare it with `eq: true` or `eq: false`"
    )


def test_true_false_on_a_number_signal(tmp_path):
    text = edit(BASE, "{signal: coupon_share, gte: 0.5}", "{signal: coupon_share, eq: true}")
    message = rules_error(tmp_path, "num.yaml", text)
    assert f"num.yaml line {line_of(text, 'eq: true')}: traits.0.when: signal 'coupon_share' is a number" in message


def test_a_signal_the_processor_does_not_keep(tmp_path):
    text = edit(BASE, "{signal: coupon_share, gte: 0.5}", "{signal: coupon_shares, gte: 0.5}")
    message = rules_error(tmp_path, "signal.yaml", text)
    assert message.startswith(f"signal.yaml line {line_of(text, 'coupon_shares')}: traits.0.when: ")
    assert "unknown signal 'coupon_shares': the processor keeps no such state (did you mean 'coupon_share'?)" in message


def test_a_threshold_signal_the_processor_does_not_keep(tmp_path):
    text = edit(
        BASE,
        "{signal: purchases, gte: 1}",
        "{signal: days_since_last_purchase, gte: {signal: purchase_rythm_days, times: 3}}",
    )
    message = rules_error(tmp_path, "ref.yaml", text)
    assert (
        f"ref.yaml line {line_of(text, 'rythm')}: lifecycle.0.when.gte.signal: unknown signal "
        "'purchase_rythm_days'" in message
    )
    assert "did you mean 'purchase_rhythm_days'?" in message


def test_a_signal_with_nothing_close(tmp_path):
    text = edit(BASE, "{signal: coupon_share, gte: 0.5}", "{signal: zodiac_sign, eq: 3}")
    message = rules_error(tmp_path, "far.yaml", text)
    assert "unknown signal 'zodiac_sign'" in message and "did you mean" not in message


def test_bad_yaml(tmp_path):
    text = edit(BASE, "  home_countries: [PT]\n", "  home_countries: [PT\n")
    message = rules_error(tmp_path, "broken.yaml", text)
    assert message.startswith("broken.yaml line ")
    assert "not valid YAML" in message
    reported = int(message.split(" line ")[1].split(":")[0])
    assert line_of(text, "[PT") <= reported <= line_of(text, "[PT") + 1, "at the bracket left open, or the next line"


def test_a_key_given_twice(tmp_path):
    text = edit(BASE, "    when: {all: []}\n", "    when: {all: []}\n    when: {any: []}\n")
    message = rules_error(tmp_path, "twice.yaml", text)
    assert message == (
        f"twice.yaml line {line_of(text, 'any: []')}: not valid YAML: "
        f"duplicate key 'when' (first on line {line_of(text, 'all: []')})"
    )


def test_not_a_mapping_at_all(tmp_path):
    message = rules_error(tmp_path, "list.yaml", "- just\n- a list\n")
    assert message.startswith("list.yaml line 1: expected a mapping of fields")


def test_every_problem_is_reported_at_once(tmp_path):
    text = edit(
        edit(BASE, "    description: Paid at least once.\n", "    colour: blue\n"),
        "{signal: coupon_share, gte: 0.5}",
        "{signal: coupon_shares, gte: 0.5}",
    )
    message = rules_error(tmp_path, "two.yaml", text)
    assert message.splitlines() == [
        (
            f"two.yaml line {line_of(text, 'colour')}: lifecycle.0.colour: unknown field "
            "(allowed here: type, description, enabled, when)"
        ),
        (
            f"two.yaml line {line_of(text, 'coupon_shares')}: traits.0.when: unknown signal 'coupon_shares': "
            "the processor keeps no such state (did you mean 'coupon_share'?)"
        ),
    ]


def test_a_type_defined_twice_names_the_second_definition(tmp_path):
    text = edit(
        BASE, "  - type: prospect\n", "  - type: new\n    when: {signal: purchases, gte: 2}\n  - type: prospect\n"
    )
    message = rules_error(tmp_path, "dup.yaml", text)
    assert "'new' is defined twice" in message
    second = [i + 1 for i, line in enumerate(text.splitlines()) if line == "  - type: new"][1]
    assert message.startswith(f"dup.yaml line {second}: "), message


# --------------------------------------------------------------------------- bad playbook files


def test_a_playbook_trigger_naming_an_undefined_action(tmp_path):
    text = edit(PLAYBOOK, "  thrifty: [coupon]\n", "  thrifty: [coupons]\n")
    message = playbook_error(tmp_path, "actions.yaml", text)
    assert "triggers.thrifty: unknown action 'coupons' (define it under `actions`)" in message
    assert message.startswith(f"actions.yaml line {line_of(text, 'coupons')}: "), message


def test_a_playbook_trigger_naming_a_type_the_rules_do_not_define(tmp_path):
    text = edit(PLAYBOOK, "  thrifty: [coupon]\n", "  thrifty: [coupon]\n  big_spender: [hello]\n")
    message = playbook_error(tmp_path, "types.yaml", text)
    assert "big_spender" in message and "rules.yaml" in message
    assert message.startswith(f"types.yaml line {line_of(text, 'big_spender')}: "), message


def test_a_playbook_with_an_unknown_field_or_kind(tmp_path):
    text = edit(PLAYBOOK, "cooldown_days: 1}\n  coupon", "cooldown: 1}\n  coupon")
    message = playbook_error(tmp_path, "field.yaml", text)
    line = line_of(text, "cooldown: 1")
    assert f"field.yaml line {line}: actions.hello.cooldown: unknown field (did you mean 'cooldown_days'?" in message
    assert f"field.yaml line {line}: actions.hello.cooldown_days: required, but missing" in message
    text = edit(PLAYBOOK, "kind: promotion", "kind: promo")
    message = playbook_error(tmp_path, "kind.yaml", text)
    assert message.startswith(f"kind.yaml line {line_of(text, 'promo,')}: actions.coupon.kind: ")
    assert "'promo'" in message


def test_the_last_win_back_must_be_a_defined_action(tmp_path):
    text = PLAYBOOK.replace("actions:\n", "suppress: {last_win_back: farewell}\nactions:\n")
    with pytest.raises(PlaybookError) as info:
        load_playbook(write(tmp_path, "bye.yaml", text))
    assert "suppress.last_win_back: unknown action 'farewell'" in str(info.value)


def test_the_shipped_files_load_and_agree():
    model = load_model(DEFAULT_RULES, DEFAULT_PLAYBOOK_FILE)
    assert set(model.playbook.triggers) == model.type_names


# --------------------------------------------------------------------------- what a user may change


def rules_copy(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    text = DEFAULT_RULES.read_text()
    for old, new in edits:
        text = edit(text, old, new)
    return write(tmp_path, name, text)


def play(steps, model: Model):
    state, outs = None, []
    for step in steps:
        out = apply_event(state, step, model)
        outs.append(out)
        state = out.state
    return state, outs


def test_a_user_can_change_a_threshold_loyal_at_five_purchases(tmp_path):
    path = rules_copy(
        tmp_path, "loyal5.yaml", ("    when: {signal: purchases, gte: 3}\n", "    when: {signal: purchases, gte: 5}\n")
    )
    model = load_model(path)
    steps = Journey("five").buy(0).buy(10).buy(20).buy(30).buy(40).steps
    state, outs = play(steps, model)
    assert state.lifecycle == "loyal"
    moves = [[(c.from_, c.to) for c in o.changes if c.dimension == "lifecycle"] for o in outs]
    assert moves == [[(None, "new")], [], [], [], [("new", "loyal")]]
    [loyal] = [c for c in outs[-1].changes if c.to == "loyal"]
    assert loyal.reason.evidence == {"purchases": 5}
    # the shipped rules make the same customer loyal at the third
    _, outs = play(steps, load_model())
    assert [c.to for c in outs[2].changes if c.dimension == "lifecycle"] == ["loyal"]


def test_a_user_can_disable_a_type_advocate_off(tmp_path):
    path = rules_copy(
        tmp_path, "no-advocate.yaml", ("  - type: advocate\n", "  - type: advocate\n    enabled: false\n")
    )
    model = load_model(path)  # the shipped playbook still names advocate: a defined (if disabled) type
    steps = Journey("fan").buy(0).buy(10).buy(20).survey(21, nps=10).steps
    state, outs = play(steps, model)
    assert state.lifecycle == "loyal"
    assert [c for c in outs[-1].changes if c.dimension == "lifecycle"] == []
    assert "referral_programme" not in [a.action for o in outs for a in o.actions]
    state, _ = play(steps, load_model())
    assert state.lifecycle == "advocate"


def test_a_user_can_add_a_trait_from_existing_signals(tmp_path):
    big_spender = "  - type: big_spender\n    when: {signal: total_spend, gte: 1000}\n"
    path = rules_copy(tmp_path, "big.yaml", ("traits:\n", "traits:\n" + big_spender))
    model = load_model(path)
    steps = Journey("big").buy(0, amount=600).buy(10, amount=399.99).buy(20, amount=0.01).steps
    state, outs = play(steps, model)
    assert [c.to for o in outs[:2] for c in o.changes if c.dimension == "trait" and c.to == "big_spender"] == []
    [change] = [c for c in outs[2].changes if c.to == "big_spender"]
    assert change.reason.rule == "trait.big_spender"
    assert change.reason.evidence == {"total_spend": 1000.0}
    assert state.traits["big_spender"] == ts(20)
    # ...and a playbook may now trigger on it
    playbook = DEFAULT_PLAYBOOK_FILE.read_text() + "  big_spender: [vip_note]\n"
    playbook = edit(
        playbook, "actions:\n", "actions:\n  vip_note: {channel: phone, kind: service, cooldown_days: 365}\n"
    )
    model = load_model(path, write(tmp_path, "vip.yaml", playbook))
    _, outs = play(steps, model)
    assert [a.action for a in outs[2].actions if a.params["type"] == "big_spender"] == ["vip_note"]
    # the shipped playbook with those rules refuses nothing, and the shipped rules refuse that playbook
    with pytest.raises(PlaybookError):
        load_model(DEFAULT_RULES, tmp_path / "vip.yaml")


def test_a_user_trait_on_mean_support_sentiment_sees_a_change_request(tmp_path):
    """`mean_support_sentiment` counts the sentiment of every support, score *and change-request*
    payload (the fold adds any SupportPayload's sentiment), but the signal is declared to change
    only on support kinds and scored kinds: a trait built on it is not judged again on a
    change request, so it appears only at some later, unrelated event (with the wrong cause)."""
    grumpy = "  - type: grumpy\n    when: {signal: mean_support_sentiment, lte: -0.5}\n"
    path = rules_copy(tmp_path, "grumpy.yaml", ("traits:\n", "traits:\n" + grumpy))
    model = load_model(path)
    j = Journey("grumpy").buy(0).ev(5, "change_request", payload=_support(-0.9))
    state, outs = play(j.steps, model)
    assert state.mean_support_sentiment == pytest.approx(-0.9)
    assert [c.caused_by for c in outs[-1].changes if c.to == "grumpy"] == [j.last_id]


def _support(sentiment: float):
    from schemas import SupportPayload

    return SupportPayload(topic="resize please", sentiment=sentiment)
