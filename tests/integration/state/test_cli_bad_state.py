"""The database commands on a database that is damaged, empty, not one at all
or in a directory they cannot write, and their count options: what is wrong
said plainly, with the documented exit status, never a Python traceback."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import sqlite3
from pathlib import Path

import msgspec
import pytest

from coderouterd.cli import main
from coderouterd.state.db import open_db
from coderouterd.state.migrate import discover, migrate
from tests.integration.process import CLI
from tests.integration.state.test_state_cli import Setup, write_audit

READERS = [
    ["db", "status"],
    ["audit", "tail"],
    ["audit", "verify"],
    ["requests"],
    ["requests", "some-id"],
    ["usage"],
    ["replay", "list"],
]


@pytest.fixture
def setup(short_dir: Path) -> Setup:
    return Setup(short_dir)


async def migrated(path: Path) -> None:
    conn = await open_db(path)
    await migrate(conn, discover(), now=1.0)
    await conn.close()


def damage(path: Path) -> None:
    """Garbage over the tables' pages; the schema page (the first) stays."""
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : page * 6] = b"\xab" * len(data[page : page * 6])
    path.write_bytes(bytes(data))


async def test_db_status_reports_a_damaged_database_as_its_problems_exit_1(setup: Setup) -> None:
    await migrated(setup.db)
    damage(setup.db)
    code, out = await setup.cli("db", "status", "--json")
    assert code == 1, out
    reply = msgspec.json.decode(out)
    assert reply["path"] == str(setup.db)
    assert reply["schema_version"] is None and reply["pending"] is None
    assert reply["size_bytes"] == setup.db.stat().st_size
    assert "database disk image is malformed" in reply["integrity"]
    code, out = await setup.cli("db", "status")
    assert code == 1 and "Traceback" not in out, out
    assert "schema_version ?" in out


async def test_readers_of_a_damaged_database_say_so_and_what_to_do(setup: Setup) -> None:
    await migrated(setup.db)
    damage(setup.db)
    for command in READERS[1:]:
        code, out = await setup.cli(*command)
        assert code == 1, (command, out)
        assert out.startswith(f"coderouterd: {setup.db} is damaged"), (command, out)
        assert "`coderouterd db status` runs SQLite's integrity check" in out


async def test_readers_of_a_file_that_is_not_a_database_say_so(setup: Setup) -> None:
    setup.state_dir.mkdir(mode=0o700)
    setup.db.write_bytes(b"this is not an SQLite database, it is a text file\n" * 20)
    for command in READERS:
        code, out = await setup.cli(*command)
        assert code == 1, (command, out)
        assert out.startswith(f"coderouterd: {setup.db} is not an SQLite database"), (command, out)


async def test_audit_of_an_empty_database_file_says_it_has_no_audit_log(setup: Setup) -> None:
    # An emptied file must not pass for an intact, empty log.
    setup.state_dir.mkdir(mode=0o700)
    setup.db.write_bytes(b"")
    for command in (["audit", "tail"], ["audit", "verify"]):
        code, out = await setup.cli(*command)
        assert code == 1, (command, out)
        assert f"{setup.db} has no audit log: no coderouterd has started on it" in out
    code, out = await setup.cli("db", "status", "--json")
    assert code == 0, out
    assert msgspec.json.decode(out)["schema_version"] == 0


async def in_read_only_mount(setup: Setup, *args: str) -> tuple[int, str]:
    """`coderouterd ARGS` with the state directory mounted read-only (as root,
    file modes would not stop a write)."""
    state = shlex.quote(str(setup.state_dir))
    cli = shlex.join([*CLI, *args, "--config", str(setup.config)])
    script = f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && exec {cli}"
    proc = await asyncio.create_subprocess_exec(
        "unshare", "-m", "sh", "-c", script,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=setup.env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


@pytest.fixture
async def read_only(setup: Setup) -> Setup:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    setup.state_dir.mkdir(mode=0o700)
    code, out = await in_read_only_mount(setup, "--version")
    if code != 0:
        pytest.skip(f"cannot mount here: {out.strip()}")
    return setup


async def test_a_database_in_a_read_only_directory_is_read(read_only: Setup) -> None:
    await write_audit(read_only.db, 3)
    code, out = await in_read_only_mount(read_only, "audit", "tail", "--json")
    assert code == 0, out
    assert [r["seq"] for r in msgspec.json.decode(out)] == [1, 2, 3]
    for command, says in (
        (["requests"], "no requests"),
        (["usage"], "no requests"),
        (["replay", "list"], "no replay records"),
        (["audit", "verify"], "ok: 3 rows, chain intact"),
        (["db", "status"], "integrity      ['ok']"),
    ):
        code, out = await in_read_only_mount(read_only, *command)
        assert code == 0 and says in out, (command, out)
    assert sorted(p.name for p in read_only.state_dir.iterdir()) == ["coderouterd.db"]


async def test_pages_left_in_the_wal_of_a_read_only_directory_are_named(read_only: Setup) -> None:
    # A daemon killed mid-write leaves pages in the -wal; reading them takes a
    # -shm, which a read-only directory cannot get.
    source = read_only.root / "source" / read_only.db.name
    await migrated(source)
    # Copied while the writer holds them open: closing would move the pages out.
    with contextlib.closing(sqlite3.connect(source)) as db:
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 2.0)")
        db.commit()
        for name in (source.name, source.name + "-wal"):
            shutil.copy(source.with_name(name), read_only.state_dir / name)
    for command in (["requests"], ["db", "status"]):
        code, out = await in_read_only_mount(read_only, *command)
        assert code == 1, (command, out)
        assert out.startswith(
            f"coderouterd: cannot read {read_only.db}: pages not yet in it wait in "
            f"coderouterd.db-wal, and SQLite cannot create coderouterd.db-shm in "
            f"{read_only.state_dir} to read them"
        ), (command, out)


COUNTS = [["requests", "--limit"], ["replay", "list", "--limit"], ["audit", "tail", "-n"]]


@pytest.mark.parametrize("option", COUNTS, ids="_".join)
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "0: must be at least 1"),
        ("-3", "-3: must be at least 1"),
        ("1000001", "1000001: must be at most 1000000"),
        ("99999999999999999999", "99999999999999999999: must be at most 1000000"),
        ("ten", "'ten': expected a whole number"),
    ],
)
def test_every_count_option_takes_1_to_a_million(
    option: list[str], value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*option, value])
    assert exited.value.code == 2
    assert f"error: argument {option[-1]}: {says}" in capsys.readouterr().err


async def test_a_count_is_read_up_to_a_million_and_refused_past_it(setup: Setup) -> None:
    await write_audit(setup.db, 2)
    for option in COUNTS:
        code, out = await setup.cli(*option, "1000000")
        assert code == 0, (option, out)
        code, out = await setup.cli(*option, "1000001")
        assert code == 2, (option, out)
        assert f"argument {option[-1]}: 1000001: must be at most 1000000" in out
