"""Request bodies cut into shared pieces and joined again (pure)."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.state import pieces
from coderouterd.state.pieces import MIN_PIECE_BYTES, RUN_DIVISOR, MissingPieceError

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
WORDS = ("read", "file", "edit", "test", "def", "return", "import", "error", "path", "line")


def fields_of(body: dict[str, Any]) -> dict[str, msgspec.Raw]:
    return _fields.decode(json.dumps(body).encode())


def round_trip(body: dict[str, Any]) -> tuple[dict[str, Any], list[pieces.Piece]]:
    recipe, parts = pieces.split(fields_of(body))
    joined = pieces.join(recipe, {p.digest: p.data for p in parts})
    return json.loads(joined), parts


def message(i: int, size: int = 300) -> dict[str, Any]:
    # Words drawn per turn: text that compresses like prose, not like "xxxx".
    rng = random.Random(i)
    text = " ".join(rng.choice(WORDS) + str(rng.randrange(100)) for _ in range(size // 6))
    role = "user" if i % 2 == 0 else "assistant"
    return {"role": role, "content": [{"type": "text", "text": f"turn {i} {text}"}]}


def conversation(turns: int) -> dict[str, Any]:
    return {
        "model": "claude-sonnet",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "You are a coding agent. " * 40}],
        "tools": [{"name": f"T{i}", "input_schema": {"type": "object"}} for i in range(30)],
        "messages": [message(i) for i in range(turns)],
        "stream": True,
    }


def test_a_conversation_comes_back_whole_with_its_key_order() -> None:
    body = conversation(40)
    joined, parts = round_trip(body)
    assert joined == body
    assert list(joined) == list(body)
    # system, tools and some runs of messages; far fewer pieces than messages.
    assert 3 <= len(parts) < 40


def test_small_fields_and_short_histories_stay_in_the_recipe() -> None:
    body = {"model": "m", "system": "short", "messages": [message(0, 10)], "max_tokens": 5}
    recipe, parts = pieces.split(fields_of(body))
    assert parts == []
    assert pieces.digests_in(recipe) == []
    assert json.loads(pieces.join(recipe, {})) == body


def test_unknown_large_fields_stay_inline() -> None:
    body = {"model": "m", "metadata": {"note": "n" * (2 * MIN_PIECE_BYTES)}, "messages": []}
    joined, parts = round_trip(body)
    assert joined == body and parts == []


def test_a_growing_history_shares_every_closed_run() -> None:
    earlier = {p.digest for p in pieces.split(fields_of(conversation(60)))[1]}
    later_parts = pieces.split(fields_of(conversation(90)))[1]
    later = {p.digest for p in later_parts}
    # Only the run still open at turn 60 may differ; everything before it is shared.
    assert len(earlier - later) <= 1
    assert len(earlier & later) >= len(earlier) - 1


def test_a_changed_old_message_changes_only_its_run() -> None:
    body = conversation(60)
    before = [p.digest for p in pieces.split(fields_of(body))[1]]
    body["messages"][5]["content"][0]["text"] += " edited"
    after = [p.digest for p in pieces.split(fields_of(body))[1]]
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_the_last_run_of_a_history_stays_in_the_recipe() -> None:
    body = conversation(40)
    recipe, parts = pieces.split(fields_of(body))
    last = json.dumps(body["messages"][-1]).encode()
    # The message the next turn follows (and a client may edit) is no piece,
    # so the next turn does not leave a piece behind that nothing names.
    assert last in recipe
    assert not any(last in p.data for p in parts)
    named = {bytes.fromhex(h) for h in json.loads(recipe)["pieces"]["messages"]}
    assert named == {p.digest for p in parts} - {parts[0].digest, parts[1].digest}


def test_a_recipe_naming_every_run_as_a_piece_still_joins() -> None:
    # As recipes were written before the last run stayed in them: rows in
    # existing databases still replay.
    body = conversation(30)
    recipe, parts = pieces.split(fields_of(body))
    old = json.loads(recipe)
    tail = json.dumps(old.pop("tail"), separators=(",", ":")).encode()[1:-1]
    runs = {p.digest: p.data for p in parts}
    runs[pieces.digest(tail)] = tail
    old["pieces"]["messages"].append(pieces.digest(tail).hex())
    assert json.loads(pieces.join(json.dumps(old).encode(), runs)) == body


def test_a_missing_piece_is_named() -> None:
    recipe, parts = pieces.split(fields_of(conversation(10)))
    available = {p.digest: p.data for p in parts[1:]}
    with pytest.raises(MissingPieceError, match=parts[0].digest.hex()[:12]):
        pieces.join(recipe, available)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant"]), "content": json_values}
        ),
        max_size=40,
    ),
    system=json_values,
    padding=st.integers(min_value=0, max_value=3 * MIN_PIECE_BYTES),
)
def test_any_body_round_trips(messages: list[Any], system: Any, padding: int) -> None:
    # The padding pushes a history past MIN_PIECE_BYTES, so both paths are taken.
    history = [*messages, {"role": "user", "content": "p" * padding}]
    body = {"model": "m", "system": system, "messages": history}
    assert round_trip(body)[0] == body


def test_the_memo_gives_the_digests_hashing_would() -> None:
    memo = pieces.DigestMemo(max_conversations=2)
    bodies = [conversation(n) for n in (10, 12, 14)]
    bodies[2]["messages"][3]["content"][0]["text"] = "changed"
    other = conversation(9)
    other["messages"][0]["content"][0]["text"] = "another conversation"
    for body in [*bodies, other, bodies[0], other]:
        fields = fields_of(body)
        assert pieces.split(fields, memo) == pieces.split(fields)


def test_the_memo_is_bounded_by_the_bytes_of_its_histories_the_newest_kept() -> None:
    def continued(memo: pieces.DigestMemo, n: int, conv: str) -> int:
        before = memo.continued
        pieces.split(compact(conversation(n)), memo, conv)
        return memo.continued - before

    size = len(compact(conversation(20))["messages"])
    memo = pieces.DigestMemo(max_bytes=int(2.5 * size))
    for conv in "abc":
        continued(memo, 20, conv)
    # "a" was forgotten to make room: its next turn is split whole.
    assert continued(memo, 22, "a") == 0
    assert continued(memo, 22, "c") == 1
    # A history larger than the bound is kept all the same (alone).
    memo = pieces.DigestMemo(max_bytes=size // 2)
    continued(memo, 20, "a")
    assert continued(memo, 22, "a") == 1


def compact(body: dict[str, Any]) -> dict[str, msgspec.Raw]:
    return _fields.decode(json.dumps(body, separators=(",", ":")).encode())


def test_a_continued_history_reuses_its_closed_runs_and_splits_as_without_the_memo() -> None:
    memo = pieces.DigestMemo()
    for turns in (30, 31, 33, 33, 40):
        fields = compact(conversation(turns))
        assert pieces.split(fields, memo) == pieces.split(fields)
    # Every body after the first continued the one before it.
    assert memo.continued == 4


def own(turns: int, n: int) -> dict[str, Any]:
    """Conversation n: its own first message."""
    body = conversation(turns)
    body["messages"][0]["content"][0]["text"] = f"conversation {n} " * 20
    return body


def test_many_conversations_at_once_each_continue_their_own_history() -> None:
    memo = pieces.DigestMemo(max_conversations=40)
    for turns in (30, 31, 33):
        for n in range(40):
            fields = compact(own(turns, n))
            assert pieces.split(fields, memo, conversation=n) == pieces.split(fields)
    assert memo.continued == 2 * 40
    # Without the hint the memo finds them too, comparing with each.
    blind = pieces.DigestMemo(max_conversations=40)
    for turns in (30, 31):
        for n in range(40):
            pieces.split(compact(own(turns, n)), blind)
    assert blind.continued == 40


def test_moved_cache_breakpoints_still_continue_the_history() -> None:
    # Breakpoints on the newest two user turns: each turn one leaves a message
    # a few back, which may lie in a closed run by then.
    def marked(m: dict[str, Any], on: bool) -> dict[str, Any]:
        blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]
        if on:
            blocks[-1]["cache_control"] = {"type": "ephemeral"}
        return {**m, "content": blocks}

    memo = pieces.DigestMemo()
    messages = [message(i) for i in range(30)]
    for turn in range(24):
        messages = [*messages, message(100 + 2 * turn), message(101 + 2 * turn)]
        n = len(messages)
        sent = [marked(m, i in (n - 1, n - 3)) for i, m in enumerate(messages)]
        fields = compact({**conversation(0), "messages": sent})
        assert pieces.split(fields, memo) == pieces.split(fields)
    assert memo.continued == 23


def closes_a_run(m: dict[str, Any]) -> bool:
    return pieces.digest(json.dumps(m, separators=(",", ":")).encode())[0] % RUN_DIVISOR == 0


def test_a_history_whose_last_message_closes_a_run_is_continued() -> None:
    # Such a run ends at the array's end: nothing after it confirms where.
    turns = next(n for n in range(20, 80) if closes_a_run(message(n - 1)))
    memo = pieces.DigestMemo()
    pieces.split(compact(conversation(turns)), memo)
    fields = compact(conversation(turns + 2))
    assert pieces.split(fields, memo) == pieces.split(fields)
    assert memo.continued == 1


def test_a_hint_naming_another_conversation_costs_a_decode_never_a_wrong_split() -> None:
    memo = pieces.DigestMemo()
    pieces.split(compact(own(30, 1)), memo, conversation=1)
    pieces.split(compact(own(30, 2)), memo, conversation=2)
    fields = compact(own(31, 1))
    assert pieces.split(fields, memo, conversation=2) == pieces.split(fields)
    assert memo.continued == 0


def test_a_history_with_other_spacing_is_split_alike_but_not_continued() -> None:
    memo = pieces.DigestMemo()
    for turns in (30, 31, 35):
        fields = fields_of(conversation(turns))  # json.dumps: ", " between messages
        assert pieces.split(fields, memo) == pieces.split(fields)
    assert memo.continued == 0


def test_offsets_that_land_on_a_comma_inside_a_spaced_history_are_not_trusted() -> None:
    # Wrongly counted offsets fall inside a message; ending every text with
    # commas makes them look like a boundary there.
    def history(turns: int) -> dict[str, Any]:
        body = conversation(turns)
        for m in body["messages"]:
            m["content"][0]["text"] += "," * 400
        return body

    memo = pieces.DigestMemo()
    for turns in (40, 41, 44):
        fields = fields_of(history(turns))
        assert pieces.split(fields, memo) == pieces.split(fields)
    assert memo.continued == 0


def test_an_edit_that_keeps_every_length_is_not_taken_for_a_continuation() -> None:
    memo = pieces.DigestMemo()
    body = conversation(40)
    pieces.split(compact(body), memo)
    text = body["messages"][1]["content"][0]["text"]
    body["messages"][1]["content"][0]["text"] = "T" + text[1:]
    body["messages"].append(message(40))
    fields = compact(body)
    assert pieces.split(fields, memo) == pieces.split(fields)
    assert memo.continued == 0


def test_an_edited_or_forked_history_is_split_as_without_the_memo() -> None:
    memo = pieces.DigestMemo(max_conversations=2)
    base = conversation(40)
    edited = conversation(42)
    edited["messages"][2]["content"][0]["text"] = "rewritten early turn"
    fork_a, fork_b = conversation(45), conversation(45)
    fork_b["messages"][-1]["content"][0]["text"] = "the other branch"
    cut = conversation(20)  # the client dropped turns (compaction)
    for body in (base, edited, conversation(44), fork_a, fork_b, cut, conversation(46)):
        fields = compact(body)
        assert pieces.split(fields, memo) == pieces.split(fields)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["grow", "edit", "cut", "same"]), st.integers(0, 12)),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_turns_splits_as_without_the_memo(steps: list[tuple[str, int]]) -> None:
    memo = pieces.DigestMemo(max_conversations=3)
    history = [message(i, 120) for i in range(10)]
    for action, n in steps:
        if action == "grow":
            history = [*history, *(message(len(history) + i, 120) for i in range(n))]
        elif action == "edit" and history:
            # Same length: offsets stay where they were, only bytes differ.
            history = [dict(m) for m in history]
            old = history[n % len(history)]
            text = old["content"][0]["text"]
            old["content"] = [{"type": "text", "text": "E" + text[1:]}]
        elif action == "cut":
            history = history[: max(1, len(history) - n)]
        fields = compact({"model": "m", "messages": history})
        assert pieces.split(fields, memo) == pieces.split(fields)


def test_a_pack_holds_its_pieces_in_order_and_gives_them_back() -> None:
    new = {pieces.digest(d): d for d in (b"alpha", b"", b"gamma!")}
    pack = pieces.pack(new)
    assert pack.data == b"alphagamma!"
    assert pieces.unpack(pack.data, pack.places) == new
    # Named by its pieces: the same pieces in another order are another pack.
    assert pack.digest == pieces.pack(dict(new)).digest
    assert pack.digest != pieces.pack(dict(reversed(new.items()))).digest


def test_a_place_past_the_packs_end_gives_nothing() -> None:
    d = pieces.digest(b"x")
    assert pieces.unpack(b"abc", [(d, 1, 2)]) == {d: b"bc"}
    assert pieces.unpack(b"abc", [(d, 2, 2)]) == {}
    assert pieces.unpack(b"abc", [(d, -1, 1)]) == {}


def test_remembered_whole_fields_are_bounded_by_bytes_the_newest_kept() -> None:
    memo = pieces.DigestMemo(max_bytes=10_000)
    values = [json.dumps(["x" * (1000 + i)]).encode() for i in range(30)]
    stored = []
    for v in values:
        stored.append(memo.field(memoryview(v))[0])
        assert memo.field_bytes <= 10_000
    # A remembered value comes back as the bytes kept; a forgotten one is copied anew.
    assert memo.field(memoryview(values[-1]))[0] is stored[-1]
    assert memo.field(memoryview(values[0]))[0] is not stored[0]
    # One value larger than the bound is kept all the same, alone.
    huge = json.dumps(["y" * 20_000]).encode()
    memo.field(huge)
    assert memo.field_bytes == len(huge)
