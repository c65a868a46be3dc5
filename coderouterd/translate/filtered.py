"""What the filtered transcoders share (pure): the stream's state is the
passthrough source's, which checks every frame and accounts usage; only the
output, and so the repair count, is the filter's."""

from __future__ import annotations

from typing import Protocol

from coderouterd.wire.usage import Usage


class _Source(Protocol):
    @property
    def finished(self) -> bool: ...

    @property
    def upstream_error(self) -> str | None: ...

    @property
    def upstream_error_body(self) -> bytes: ...

    @property
    def usage(self) -> Usage | None: ...

    @property
    def usage_estimated(self) -> bool: ...


class _Filter(Protocol):
    @property
    def repairs(self) -> int: ...


class FilteredTranscoder:
    def __init__(self, source: _Source, stream: _Filter) -> None:
        self._source = source
        self._stream = stream

    @property
    def finished(self) -> bool:
        return self._source.finished

    @property
    def upstream_error(self) -> str | None:
        return self._source.upstream_error

    @property
    def upstream_error_body(self) -> bytes:
        return self._source.upstream_error_body

    @property
    def usage(self) -> Usage | None:
        return self._source.usage

    @property
    def usage_estimated(self) -> bool:
        return self._source.usage_estimated

    @property
    def repairs(self) -> int:
        return self._stream.repairs
