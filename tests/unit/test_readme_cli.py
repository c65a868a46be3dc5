"""README "Command line": the commands table and the `--config` sentence
against the argparse parser the `coderouterd` command runs."""

from __future__ import annotations

import argparse
import re

from coderouterd.cli import _parser
from tests.readme import paragraph, section, table_rows, ticked

_HELP = {"-h", "--help"}


def parser_commands() -> dict[str, set[str]]:
    """'ctl status' -> the options its parser takes."""
    out: dict[str, set[str]] = {}

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sp in action.choices.items():
                walk(sp, f"{prefix} {name}".strip())
        if not subs:
            out[prefix] = {o for a in p._actions for o in a.option_strings} - _HELP

    walk(_parser(), "")
    return out


def documented_commands(known: set[str]) -> dict[str, set[str]]:
    """Each command of the table, as the parser names it (`replay list` is
    `replay` with a positional), -> the options its rows' synopses name."""
    out: dict[str, set[str]] = {}
    for row in table_rows(section("Command line")):
        match = re.match(r"`coderouterd ([^`]*)`", row[0])
        if match is None:
            continue
        synopsis = match[1].replace("\\|", "|")
        words: list[str] = []
        for word in synopsis.split():
            if word.startswith(("[", "-")) or word.isupper():
                break
            words.append(word)
        while words and " ".join(words) not in known:
            words.pop()  # a positional written as a word (`replay list`)
        if not words:
            continue  # `coderouterd --version`: no command
        flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", synopsis))
        out.setdefault(" ".join(words), set()).update(flags)
    return out


def commands_without_config() -> set[str]:
    """The commands the sentence after the table names as not taking `--config`:
    "Every command [but `a` and `b`] takes `--config FILE` ..."."""
    text = paragraph(section("Command line"), "Every command")
    match = re.match(r"Every command(.*?)\s+takes\s+`--config FILE`", text, re.S)
    assert match is not None, text
    return set(ticked(match[1]))


def test_the_table_lists_every_command_and_no_other() -> None:
    commands = parser_commands()
    assert sorted(documented_commands(set(commands))) == sorted(commands)


def test_each_command_takes_the_options_its_rows_name_and_no_other() -> None:
    """A row's synopsis names every option but `--config`, which the sentence
    after the table gives for all commands it does not except."""
    commands = parser_commands()
    documented = documented_commands(set(commands))
    without = commands_without_config()
    wrong = {}
    for name, flags in commands.items():
        said = documented.get(name, set()) | ({"--config"} if name not in without else set())
        if said != flags:
            wrong[name] = {"readme only": sorted(said - flags), "code only": sorted(flags - said)}
    assert wrong == {}


def test_the_commands_said_to_take_no_config_are_those_that_take_none() -> None:
    without = {name for name, flags in parser_commands().items() if "--config" not in flags}
    assert commands_without_config() == without
