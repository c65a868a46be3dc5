"""A PDF an OpenAI client sends inline (a `file` content part, the openai
SDK's way) reaches Claude as a `document` block; other files have no
Anthropic block and are left out, recorded."""

from __future__ import annotations

import base64
from typing import Any

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped
from tests.integration.clients import o_sdk as sdk

# The smallest PDF (one empty page).
PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 3 3]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
PDF_B64 = base64.b64encode(PDF).decode()
CSV_B64 = base64.b64encode(b"a,b\n1,2\n").decode()


async def test_a_pdf_file_part_reaches_claude_as_a_document_with_its_cache_marker(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("an empty page"))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    content: Any = [
        {"type": "text", "text": "Summarise these files."},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"},
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "file",
            "file": {"filename": "b.csv", "file_data": f"data:text/csv;base64,{CSV_B64}"},
        },
    ]
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": content}]
            )
    assert completion.choices[0].message.content == "an empty page"
    assert fake_upstream.requests[0].json["messages"][0]["content"] == [
        {"type": "text", "text": "Summarise these files."},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
            "cache_control": {"type": "ephemeral"},
        },
    ]
    assert [x.split(":")[0] for x in dropped(logs)] == ["content.file"]
