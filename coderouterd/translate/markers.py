"""Chat-template control tokens a local model leaks into its text (pure, streaming).

A server whose chat template does not match the model, or that does not
treat the template's end-of-turn token as special, lets it through as text:
Qwen's `<|im_end|>`, Llama 3's `<|eot_id|>`, Gemma's `<end_of_turn>` and
their kin end up in the answer, and a coding agent writes them into files.
`StopMarkers` removes them as the text streams: a marker split across
chunks is recognised, since a tail that could begin one is held until the
next chunk tells (at most the longest marker's length, less one).
"""

from __future__ import annotations

MARKERS = (
    "<|im_end|>",
    "<|im_start|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|end|>",
    "<|python_tag|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<end_of_turn>",
    "<start_of_turn>",
)
_LONGEST = max(map(len, MARKERS))
_PREFIXES = frozenset(m[:k] for m in MARKERS for k in range(1, len(m)))


class StopMarkers:
    __slots__ = ("_held", "removed")

    def __init__(self) -> None:
        self._held = ""
        # How many markers were taken out so far.
        self.removed = 0

    def feed(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        if "<" not in text:
            return text
        for marker in MARKERS:
            if marker in text:
                self.removed += text.count(marker)
                text = text.replace(marker, "")
        # A tail that may begin a marker waits for the next chunk.
        start = text.rfind("<", max(0, len(text) - _LONGEST + 1))
        while start != -1:
            if text[start:] in _PREFIXES:
                self._held = text[start:]
                return text[:start]
            start = text.rfind("<", max(0, len(text) - _LONGEST + 1), start)
        return text

    def flush(self) -> str:
        """The end of the text: what was held was no marker after all."""
        held, self._held = self._held, ""
        return held
