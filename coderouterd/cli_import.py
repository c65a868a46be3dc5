"""`coderouterd import-config`: a coderouter-cli providers.yaml as a coderouterd config.

The conversion (config/legacy.py) says what it changed; the result is
checked as `serve` would check it before anything is written, and `--out`
never replaces a file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from coderouterd import __version__
from coderouterd.config import default_config_path, load_config_text
from coderouterd.config.legacy import (
    Note,
    convert,
    find_legacy_config,
    grouped,
    legacy_config_paths,
)
from coderouterd.config.load import _plain, read_config_file
from coderouterd.config.yaml_read import parse_yaml
from coderouterd.errors import CoderouterError, ConfigError, ConfigProblem

EXIT_OK = 0
# YAML's printable characters but line breaks (\n, \r, U+0085, U+2028,
# U+2029) and the byte order mark: what a `|` block, with \n, or a comment
# line holds as it is.
_PLAIN = "\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff"
_PRINTED = re.compile(f"[\n{_PLAIN}]*")
_NOT_PLAIN = re.compile(f"[^{_PLAIN}]")


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "import-config",
        help="convert a coderouter-cli providers.yaml into a coderouterd config",
    )
    p.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="the providers.yaml (default: where coderouter-cli looks: $CODEROUTER_CONFIG, "
        "./providers.yaml, ~/.coderouter/providers.yaml)",
    )
    p.add_argument("--out", type=Path, help="write the result here (never over a file)")
    p.set_defaults(func=run)


def legacy_hint() -> str | None:
    """What to tell someone whose only config is coderouter-cli's (None: nothing)."""
    legacy = find_legacy_config()
    if legacy is None:
        return None
    return (
        f"{legacy} is coderouter-cli's config and is not read; convert it: "
        f"coderouterd import-config {legacy} --out {default_config_path()}"
    )


def run(args: argparse.Namespace) -> int:
    source: Path | None = args.file or find_legacy_config()
    if source is None:
        looked = ", ".join(str(p) for p in legacy_config_paths(os.environ, Path.cwd(), Path.home()))
        raise CoderouterError(f"no coderouter-cli config found (looked at {looked}); name one")
    converted, changes = convert(_read_mapping(source))
    notes = grouped(changes)
    text = render(converted, source, notes)
    out: Path | None = args.out
    if out is not None:
        _refuse_existing(out)
    print(f"coderouterd: {source}: {len(notes)} changes", file=sys.stderr)
    for note in notes:
        print(f"  {note}", file=sys.stderr)
    try:
        load_config_text(text, file=str(out or "<converted>"))
    except ConfigError:
        # The lines the problems name are those of this text.
        print(text, end="")
        if out is not None:
            print(f"coderouterd: {out} was not written", file=sys.stderr)
        raise
    if out is None:
        print(text, end="")
    else:
        _write(out, text)
        print(f"coderouterd: wrote {out}; `coderouterd check --config {out}` shows how it routes")
    return EXIT_OK


def _refuse_existing(out: Path) -> None:
    try:
        exists = out.exists()
    except OSError as exc:
        raise _unwritable(out, exc) from exc
    if exists:
        raise CoderouterError(f"{out} exists; choose another --out (nothing was written)")


def _write(out: Path, text: str) -> None:
    """`text` in a new file at `out`: never over a file, never half of it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        f = out.open("x", encoding="utf-8")
    except FileExistsError as exc:
        # `out` itself, made since the check, or something not a directory on its way.
        what = "it exists" if exc.filename == str(out) else f"{exc.filename} is not a directory"
        raise _unwritable(out, what) from exc
    except OSError as exc:
        raise _unwritable(out, exc) from exc
    try:
        with f:
            f.write(text)
    except OSError as exc:
        # The reason to report is the write's, not a failed clean-up's.
        with contextlib.suppress(OSError):
            out.unlink()
        raise _unwritable(out, exc) from exc


def _unwritable(out: Path, reason: OSError | str) -> CoderouterError:
    if isinstance(reason, OSError):
        # The path an error names may be a directory on the way, not `out`.
        at = f" ({reason.filename})" if reason.filename not in (None, str(out)) else ""
        reason = f"{reason.strerror or reason}{at}"
    return CoderouterError(
        f"cannot write {out}: {reason}; choose another --out (nothing was written)"
    )


def _read_mapping(source: Path) -> dict[str, Any]:
    file = str(source)
    _, text = read_config_file(file)
    data = _plain(parse_yaml(text, file))
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "the top level must be a mapping")])
    return data


def render(converted: dict[str, Any], source: Path, notes: list[Note]) -> str:
    """The converted config as YAML, headed by where it came from and what changed."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    body = io.StringIO()
    yaml.dump(_literal_blocks(converted), body)
    head = [
        f"# Converted from {source} by `coderouterd import-config` (coderouterd {__version__}).",
        "# The README's configuration reference documents every field.",
    ]
    if notes:
        head.append("# What the conversion changed or left out:")
        head += [f"#   {note}" for note in notes]
    # The source's path and its keys (in the notes) are written here: a line
    # break in one would end its comment and start a line of config.
    return "\n".join(_NOT_PLAIN.sub(_escape, line) for line in head) + "\n\n" + body.getvalue()


def _literal_blocks(value: Any) -> Any:
    """`value` with each string of several lines as a `|` block, as people write them.

    A block holds its characters as they are and reads every line break back
    as a line feed: text with another break (CR, U+0085, U+2028, U+2029) or a
    character YAML does not print is double-quoted, whose escapes carry it
    exactly (ruamel would write U+0085 raw in its other styles, and it would
    read back as a space).
    """
    if isinstance(value, dict):
        return {_quoted(k): _literal_blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_blocks(v) for v in value]
    if isinstance(value, str) and _PRINTED.fullmatch(value) and "\n" in value.rstrip("\n"):
        return LiteralScalarString(value)
    return _quoted(value)


def _quoted(value: Any) -> Any:
    if isinstance(value, str) and not _PRINTED.fullmatch(value):
        return DoubleQuotedScalarString(value)
    return value


def _escape(match: re.Match[str]) -> str:
    return match[0].encode("unicode_escape").decode("ascii")
