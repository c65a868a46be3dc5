"""BodyMemo: a body read through a remembered one is parsed exactly as if read whole."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.errors import InvalidRequestError
from coderouterd.ingress.body import BodyMemo, RequestBody, parse_body
from coderouterd.translate.anthropic_request import without_unsigned_thinking


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def body(messages: list[Any], **more: Any) -> bytes:
    return compact({"model": "m", "messages": messages, "system": "s", **more})


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def outcome(parse: Any, raw: bytes) -> tuple[Any, ...]:
    """What a parse gives, as plain values, or the error it raises."""
    try:
        p: RequestBody = parse(raw)
    except InvalidRequestError as exc:
        return ("error", exc.field, str(exc))
    fields = {k: bytes(v) for k, v in p.fields.items()}
    return (list(fields), fields, p.model, p.stream, p.profile)


def same_as_whole(
    memo: BodyMemo, raw: bytes, seen: dict[int, tuple[int, bytes]] | None = None
) -> tuple[Any, ...]:
    whole = outcome(parse_body, raw)
    parse = memo.parse if seen is None else lambda r: hinted(memo, r, seen)
    assert outcome(parse, raw) == whole
    return whole


def hinted(memo: BodyMemo, raw: bytes, seen: dict[int, tuple[int, bytes]]) -> RequestBody:
    """memo.parse, checking its hints against `seen`: each conversation's last
    turn number and body, as this test sent them."""
    p = memo.parse(raw)
    if p.conversation is None:
        assert (p.turn, p.shared) == (0, 0)
        return p
    turn, before = seen.get(p.conversation, (0, b""))
    assert p.turn == turn + 1
    assert p.shared <= len(before) and raw[: p.shared] == before[: p.shared]
    seen[p.conversation] = (p.turn, raw)
    return p


def test_a_resent_body_and_a_continued_history_are_read_through_the_memo() -> None:
    memo = BodyMemo()
    first = body([user("a")])
    same_as_whole(memo, first)
    assert memo.reused == 0
    same_as_whole(memo, bytes(bytearray(first)))
    assert memo.reused == 1
    same_as_whole(memo, body([user("a"), user("b")]))
    same_as_whole(memo, body([user("a"), user("b"), user("c")]))
    assert memo.reused == 3
    # A different history between the same fields is another conversation.
    same_as_whole(memo, body([user("z")]))
    assert memo.reused == 3


def marked(text: str) -> dict[str, Any]:
    block = {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
    return {"role": "user", "content": [block]}


def test_each_turn_says_how_many_first_bytes_it_shares_with_the_one_before() -> None:
    memo = BodyMemo()
    first, second = body([user("a"), marked("b")]), body([user("a"), user("b"), marked("c")])
    p1, p2, p3 = memo.parse(first), memo.parse(second), memo.parse(second)
    assert p1.conversation == p2.conversation == p3.conversation is not None
    assert [(p.turn, p.shared) for p in (p1, p2, p3)] == [
        (1, 0),
        # Up to the end of the first message: the second gained its breakpoint.
        (2, len(compact({"model": "m", "messages": [user("a")]})) - 2),
        (3, len(second)),
    ]
    # Read whole, a body is in no conversation and has no turn.
    assert (parse_body(first).turn, parse_body(first).shared) == (0, 0)


def test_a_turn_that_moves_the_cache_breakpoint_off_the_last_message_goes_on_before_it() -> None:
    memo = BodyMemo()
    same_as_whole(memo, body([user("a"), marked("b")]))
    same_as_whole(memo, body([user("a"), user("b"), user("c"), marked("d")]))
    same_as_whole(memo, body([user("a"), user("b"), user("c"), user("d"), marked("e")]))
    assert memo.reused == 2


def test_many_conversations_at_once_are_each_read_through_their_last_turn() -> None:
    memo = BodyMemo()
    for turn in range(4):
        for conv in range(40):
            same_as_whole(memo, body([user(f"conv {conv}")] + [user(str(t)) for t in range(turn)]))
    assert memo.reused == 3 * 40


def test_a_body_with_other_surroundings_is_read_whole() -> None:
    memo = BodyMemo()
    same_as_whole(memo, body([user("a"), user("b")]))
    # The same messages and one more, but a field after them changed.
    same_as_whole(memo, body([user("a"), user("b"), user("c")], system="other"))
    same_as_whole(memo, body([user("a"), user("b")], stream=True))
    same_as_whole(memo, compact({"model": "n", "messages": [user("a")], "system": "s"}))
    assert memo.reused == 0


@pytest.mark.parametrize(
    ("before", "after", "field"),
    [
        # `[]` then a comma: the bytes before the comma are not a message.
        (b"[]", b'[,{"role":"user","content":"b"}]', "body"),
        # A trailing comma after the messages read before.
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"},]', "body"),
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"},{"role":}]', "body"),
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"}', "body"),
        (b'[{"role":"user","content":"a"}]', b'{"role":"user","content":"a"}', "messages"),
        (b'[{"role":"user","content":"a"}]', b'"hi"', "messages"),
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"}] ]', "body"),
        # Anything but a comma where the messages read before end.
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"} 2]', "body"),
        (b'[{"role":"user","content":"a"}]', b'[{"role":"user","content":"a"}x2]', "body"),
    ],
)
def test_a_broken_history_between_remembered_fields_gets_the_whole_read_error(
    before: bytes, after: bytes, field: str
) -> None:
    memo = BodyMemo()
    head, tail = b'{"model":"m","messages":', b',"system":"s"}'
    same_as_whole(memo, head + before + tail)
    got = same_as_whole(memo, head + after + tail)
    assert got[:2] == ("error", field)


def test_repeated_keys_spacing_and_a_body_profile_are_never_remembered() -> None:
    memo = BodyMemo()
    # The second `messages` wins when read whole; a memo taking the first
    # occurrence's place for the history would read the wrong one.
    repeated = b'{"model":"m","messages":[1],"messages":[1]}'
    same_as_whole(memo, repeated)
    same_as_whole(memo, b'{"model":"m","messages":[1,2],"messages":[1]}')
    spaced = b'{"model": "m", "messages": [1]}'
    same_as_whole(memo, spaced)
    same_as_whole(memo, b'{"model": "m", "messages": [1,2]}')
    with_profile = b'{"model":"m","messages":[1],"profile":"p"}'
    same_as_whole(memo, with_profile)
    same_as_whole(memo, b'{"model":"m","messages":[1,2],"profile":"p"}')
    assert memo.reused == 0


def test_a_continued_history_with_spacing_in_its_new_messages_is_still_exact() -> None:
    memo = BodyMemo()
    head, tail = b'{"messages":', b',"stream":true}'
    same_as_whole(memo, head + b"[1]" + tail)
    same_as_whole(memo, head + b"[1, 2 ]" + tail)
    same_as_whole(memo, head + b"[1, 2 , 3]" + tail)
    same_as_whole(memo, head + b"[ ]" + tail)
    same_as_whole(memo, head + b"[ ,4]" + tail)
    assert memo.reused == 2


def test_the_places_a_turn_may_go_on_from_are_exact_after_spaced_messages() -> None:
    memo = BodyMemo()
    head, tail = b'{"messages":', b"}"
    same_as_whole(memo, head + b"[1]" + tail)
    same_as_whole(memo, head + b"[1, 2,3]" + tail)
    # A memo that took the spaced messages for compact ones would place a
    # message end on `3` and read on from there.
    assert same_as_whole(memo, head + b"[1, 2,,4]" + tail)[:2] == ("error", "body")
    # Spacing after the history: a whole read leaves it out of the value.
    same_as_whole(memo, head + b"[1,5] " + tail)
    # And compact ones: each cut right after its message, not a byte later.
    same_as_whole(memo, head + b"[1,2,3]" + tail)
    assert same_as_whole(memo, head + b"[1,2,,4]" + tail)[:2] == ("error", "body")
    assert memo.reused == 2


@pytest.mark.parametrize("bound", ["count", "bytes"])
def test_the_memo_is_bounded_and_keeps_the_most_recent_conversations(bound: str) -> None:
    convs = [body([user(str(i) * 1000)], system=f"s{i}") for i in range(3)]
    if bound == "count":
        memo = BodyMemo(max_conversations=2)
    else:
        memo = BodyMemo(max_bytes=int(2.5 * len(convs[0])))
    for c in convs:
        same_as_whole(memo, c)
    # The oldest went to make room; the two newest are still read through.
    same_as_whole(memo, convs[0])
    assert memo.reused == 0
    same_as_whole(memo, convs[2])
    assert memo.reused == 1


def test_a_body_larger_than_the_memo_bound_is_kept_alone() -> None:
    small = body([user("a")], system="small")
    memo = BodyMemo(max_bytes=5000)
    same_as_whole(memo, small)
    huge = body([user("x" * 10_000)], system="huge")
    same_as_whole(memo, huge)
    same_as_whole(memo, body([user("x" * 10_000), user("more")], system="huge"))
    assert memo.reused == 1
    same_as_whole(memo, small)
    assert memo.reused == 1


SIGNED = {"type": "thinking", "thinking": "t", "signature": "sig"}
UNSIGNED = {"type": "thinking", "thinking": "local", "signature": ""}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": [*blocks, {"type": "text", "text": "x"}]}


def cleaned(memo: BodyMemo, raw: bytes) -> list[Any] | None:
    p = memo.parse(raw)
    out = without_unsigned_thinking(p.fields["messages"], p.history)
    return None if out is None else json.loads(bytes(out))


def test_unsigned_thinking_in_the_new_messages_of_a_clean_history_is_found() -> None:
    memo = BodyMemo()
    history = [user("a"), assistant(SIGNED)]
    assert cleaned(memo, body(history)) is None
    history += [user("b"), assistant(UNSIGNED)]
    assert cleaned(memo, body(history)) == [user("a"), assistant(SIGNED), user("b"), assistant()]
    # The client sends the unsigned block back: found again, not taken as clean.
    history += [user("c")]
    assert cleaned(memo, body(history)) == [
        user("a"), assistant(SIGNED), user("b"), assistant(), user("c"),
    ]  # fmt: skip
    assert memo.reused == 2


def test_a_history_resent_after_its_check_keeps_the_answer() -> None:
    memo = BodyMemo()
    raw = body([user("a"), assistant(UNSIGNED)])
    assert cleaned(memo, raw) == [user("a"), assistant()]
    assert memo.parse(raw).history.unsigned is True
    clean = body([user("a"), assistant(SIGNED)])
    assert cleaned(memo, clean) is None
    assert memo.parse(clean).history.unsigned is False


def test_a_check_is_only_trusted_for_the_messages_it_was_made_for() -> None:
    memo = BodyMemo()
    p = memo.parse(body([user("a")]))
    assert without_unsigned_thinking(p.fields["messages"], p.history) is None
    other = msgspec.Raw(compact([assistant(UNSIGNED)]))
    assert without_unsigned_thinking(other, p.history) is not None


# A conversation as a client builds it: each body the one before, changed a little.
_message = st.one_of(
    st.builds(user, st.text(max_size=8)),
    st.sampled_from([assistant(SIGNED), assistant(UNSIGNED), assistant(), 1, "x", [], {}]),
)
_step = st.one_of(
    st.tuples(st.just("append"), st.lists(_message, min_size=1, max_size=3)),
    st.tuples(st.just("replace"), st.lists(_message, max_size=3)),
    st.tuples(st.just("truncate"), st.integers(0, 4)),
    # What a client moving its cache breakpoint does: the last message changes.
    st.tuples(st.just("edit_last"), st.builds(marked, st.text(max_size=4))),
    st.tuples(st.just("model"), st.sampled_from(["m", "n", None, 5])),
    st.tuples(st.just("stream"), st.sampled_from([True, False, "yes"])),
    st.tuples(st.just("resend"), st.none()),
)
_spoil = st.sampled_from([None, None, None, b" ", b",", b"]", b",]", b"[", b"x", b"\n"])


def _render(state: dict[str, Any], spacing: bool) -> bytes:
    fields = {k: v for k, v in state.items() if v is not None or k == "messages"}
    if spacing:
        return json.dumps(fields).encode()
    return compact(fields)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(_step, _spoil, st.integers(0, 200), st.booleans()), max_size=12))
def test_any_conversation_parses_through_the_memo_as_it_does_whole(
    steps: list[tuple[tuple[str, Any], bytes | None, int, bool]],
) -> None:
    # Bounds small enough that bodies are forgotten by count and by bytes.
    memo = BodyMemo(max_conversations=3, max_bytes=1500)
    seen: dict[int, tuple[int, bytes]] = {}
    state: dict[str, Any] = {"model": "m", "messages": [user("hi")], "system": "s"}
    for (op, arg), spoil, at, spacing in steps:
        if op == "append":
            state["messages"] = state["messages"] + arg
        elif op == "replace":
            state["messages"] = arg
        elif op == "truncate":
            state["messages"] = state["messages"][:arg]
        elif op == "edit_last":
            state["messages"] = [*state["messages"][:-1], arg, user("next")]
        elif op in ("model", "stream"):
            state[op] = arg
        raw = _render(state, spacing and op != "resend")
        if spoil is not None:
            # Bytes inserted anywhere: mostly inside the history, sometimes around it.
            i = at % (len(raw) + 1)
            raw = raw[:i] + spoil + raw[i:]
        if same_as_whole(memo, raw, seen)[0] != "error":
            p = hinted(memo, raw, seen)
            whole = parse_body(raw)
            got = without_unsigned_thinking(p.fields["messages"], p.history)
            want = without_unsigned_thinking(whole.fields["messages"])
            assert (got and bytes(got)) == (want and bytes(want))
        # Every remembered body is filed, and nothing else is.
        filed = [c for by_end in memo._by_end.values() for cs in by_end.values() for c in cs]
        assert sorted(filed) == sorted(c for c, _ in memo._known.newest_first())
