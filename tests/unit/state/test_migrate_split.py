"""Migration scripts are split into statements with SQLite's own idea of where one ends."""

from __future__ import annotations

import pytest

from coderouterd.state.migrate import split_statements

A = "CREATE TABLE a (x);"
B = "CREATE TABLE b (y);"
TRIGGER = "CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; DELETE FROM c; END;"


@pytest.mark.parametrize(
    ("script", "statements"),
    [
        ("CREATE TABLE a (x);\nCREATE TABLE b (y);\n", [A, B]),
        ("CREATE TABLE a (x); CREATE TABLE b (y);", [A, B]),
        ("INSERT INTO t VALUES ('a;b');", ["INSERT INTO t VALUES ('a;b');"]),
        (
            "-- a comment; with a semicolon\nCREATE TABLE a (x);",
            ["-- a comment; with a semicolon\nCREATE TABLE a (x);"],
        ),
        ("/* block; comment */ CREATE TABLE a (x);", ["/* block; comment */ CREATE TABLE a (x);"]),
        ("CREATE TABLE a (x);\n-- trailing comment\n", ["CREATE TABLE a (x);"]),
        ("CREATE TABLE a (x);\n;\n", ["CREATE TABLE a (x);"]),
        ("CREATE TABLE a (x)", ["CREATE TABLE a (x)"]),
        ("INSERT INTO t VALUES ('--');", ["INSERT INTO t VALUES ('--');"]),
        (
            f"{TRIGGER}\nSELECT 1;",
            [TRIGGER, "SELECT 1;"],
        ),
        ("", []),
        ("-- only a comment\n", []),
    ],
)
def test_split_statements(script: str, statements: list[str]) -> None:
    assert split_statements(script) == statements
