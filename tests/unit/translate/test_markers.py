"""Chat-template control tokens taken out of streamed text, wherever the chunks split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coderouterd.translate.markers import MARKERS, StopMarkers

TEXT = "Fixed.<|im_end|>\n<|im_start|>assistant <|eot_id|>a < b and <c> stay<end_of_turn><|"


def run(chunks: list[str]) -> tuple[str, int]:
    f = StopMarkers()
    out = "".join(f.feed(c) for c in chunks) + f.flush()
    return out, f.removed


def test_markers_go_and_lookalikes_stay() -> None:
    assert run([TEXT]) == ("Fixed.\nassistant a < b and <c> stay<|", 4)


@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=8))
def test_any_split_gives_the_same_text(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [TEXT[a:b] for a, b in zip([0, *points], [*points, len(TEXT)], strict=True)]
    assert run(chunks) == run([TEXT])


def test_held_text_is_only_a_possible_marker_start() -> None:
    f = StopMarkers()
    assert f.feed("a <|eo") == "a "
    assert f.feed("f") == "<|eof"  # not a marker after all: released at once
    assert f.feed("x <end_of") == "x "
    assert f.flush() == "<end_of"
    assert all(m.startswith("<") for m in MARKERS)
