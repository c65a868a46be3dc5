"""Anthropic blocks that carry text, as the text an OpenAI backend gets: tables."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.translate.content_a2o import DOCUMENT_OMITTED, document, search_result
from coderouterd.translate.types import Notes

TEXT = [{"type": "text", "text": "Deploys run at 09:00."}]


@pytest.mark.parametrize(
    ("block", "said"),
    [
        (
            {"type": "search_result", "title": "Deploys", "source": "https://w/d", "content": TEXT},
            "[search result: Deploys (https://w/d)]\nDeploys run at 09:00.",
        ),
        ({"type": "search_result", "title": "Deploys", "content": TEXT},
         "[search result: Deploys]\nDeploys run at 09:00."),
        ({"type": "search_result", "source": "https://w/d", "content": TEXT},
         "[search result: (https://w/d)]\nDeploys run at 09:00."),
        ({"type": "search_result", "content": []}, "[search result]"),
    ],
)  # fmt: skip
def test_a_search_result_is_said_with_its_title_and_source(
    block: dict[str, Any], said: str
) -> None:
    notes = Notes()
    assert search_result(block, "messages[0].content[0]", notes) == said
    assert notes.items() == []


@pytest.mark.parametrize(
    ("source", "said", "noted"),
    [
        ({"type": "text", "media_type": "text/plain", "data": "plain"}, "plain", False),
        ({"type": "content", "content": "a string"}, "a string", False),
        ({"type": "content", "content": [*TEXT, {"type": "text", "text": "UTC."}]},
         "Deploys run at 09:00.\nUTC.", False),
        # Only the text of a custom-content document can be sent.
        ({"type": "content", "content": [*TEXT, {"type": "image", "source": {}}]},
         "Deploys run at 09:00.", True),
        ({"type": "base64", "media_type": "application/pdf", "data": "JVBER"}, DOCUMENT_OMITTED, True),
        ({"type": "content", "content": 7}, DOCUMENT_OMITTED, True),
    ],
)  # fmt: skip
def test_a_document_of_text_is_sent_as_its_text(source: Any, said: str, noted: bool) -> None:
    notes = Notes()
    assert document({"type": "document", "source": source}, notes) == said
    assert bool(notes.items()) == noted
