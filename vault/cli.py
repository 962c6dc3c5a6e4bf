"""The ``tvault`` command line: the local operator's face.

Every command parses its flags, makes one service call through the same services, policy checks
and audit log as the HTTP API (as the operator, ``via=cli``), and prints JSON. Errors map to exit
codes in one place (``EXIT_CODES``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperOption

from vault import errors as e
from vault.bootstrap import Vault, build_vault
from vault.config import Settings, load_settings
from vault.domain.principal import Principal, Role
from vault.services.export import ExportQuery
from vault.services.importer import ImportOptions
from vault.services.redaction_job import DEFAULT_BATCH as REDACT_DEFAULT_BATCH

__all__ = ["EXIT_CODES", "app", "main"]


class _Command(TyperCommand):
    """Every command's class: an option that takes one value, given more than once, is a usage
    error (Click would quietly keep the last: ``--since A --since B`` would export from B), as
    a filter given twice is a 400 over HTTP. Repeatable options (``--kind``) and flags are
    not concerned."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # (Typer's own Click)
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        if ctx.resilient_parsing or any(param.is_eager for param in order):
            return super().parse_args(ctx, args)  # completion, --help: not a command to run
        seen: set[str] = set()
        for param in order:
            if not isinstance(param, TyperOption) or param.multiple or param.count:
                continue
            if param.is_flag or param.name is None:
                continue
            if param.name in seen:
                raise typer.BadParameter("given more than once", ctx=ctx, param=param)
            seen.add(param.name)
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="tvault",
    help="telemetry-vault: encrypted, purpose-bound, audited storage for computer-use telemetry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dataset_app = typer.Typer(help="Datasets.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys.", no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(hold_app, name="hold")

#: Exit codes by error class, most specific first.
EXIT_CODES: tuple[tuple[type[e.VaultError], int], ...] = (
    (e.BadRequest, 2),
    (e.ValidationFailed, 2),
    (e.PayloadTooLarge, 2),
    (e.AuthenticationError, 3),
    (e.Forbidden, 4),
    (e.NotFound, 5),
    (e.Conflict, 6),
    (e.KeyDestroyed, 7),
    (e.Gone, 7),
    (e.Unavailable, 8),
    (e.AuditFailure, 8),
    (e.IntegrityError, 9),
    (e.ConfigurationError, 10),
)
EXIT_VERIFY_FAILED = 11
EXIT_INCOMPLETE = 12  # a resumable job stopped with work left (run it again)

_OPERATOR_ROLES = frozenset(
    {Role.ADMIN, Role.AUDITOR, Role.PRIVACY_OFFICER, Role.READER, Role.COLLECTOR}
)
_DURATION = re.compile(r"^(\d{1,7})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Vault home (TVAULT_HOME); default: current dir")
]
DbOpt = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (TVAULT_DATABASE_URL)")
]


def _exit_code(exc: e.VaultError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def _emit(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@contextmanager
def _vault(home: Path | None, database_url: str | None, **extra: Any) -> Iterator[Vault]:
    vault = build_vault(load_settings(home=home, database_url=database_url, **extra))
    try:
        yield vault
    finally:
        vault.close()


def _call(
    home: Path | None, database_url: str | None, action: Callable[[Vault, Principal], Any]
) -> None:
    """The body of most commands: open the vault, make one service call as the operator,
    print its JSON answer; errors map to exit codes in :func:`_run`."""

    def body() -> None:
        with _vault(home, database_url) as vault:
            _emit(action(vault, _operator(vault.settings)))

    _run(body)


def _operator(settings: Settings) -> Principal:
    return Principal(sub=settings.operator, roles=_OPERATOR_ROLES, via="cli")


def _run(action: Callable[[], int | None]) -> None:
    """Run a command body, mapping the error tree to exit codes (the one place that does)."""
    try:
        code = action()
    except e.VaultError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        if exc.details and not isinstance(exc, e.AuthenticationError):
            typer.echo(json.dumps(exc.details, indent=2, default=str), err=True)
        raise typer.Exit(_exit_code(exc)) from None
    if code:
        raise typer.Exit(code)


def _json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object read from a file the operator named; anything else is bad input."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise e.BadRequest(f"cannot read {what} file {path}") from exc
    if not isinstance(document, dict):
        raise e.BadRequest(f"{what} file is not a JSON object")
    return document


def parse_ttl(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``2d`` to seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise e.BadRequest("ttl must look like 90s, 15m, 1h or 2d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@app.command(cls=_Command)
def serve(
    home: HomeOpt = None,
    database_url: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (TVAULT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TVAULT_PORT)")] = None,
) -> None:
    """Run the HTTP service (creating the embedded default on first run)."""

    def body() -> None:
        import uvicorn

        from vault.api import create_app

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        settings = load_settings(home=home, database_url=database_url, host=host, port=port)
        vault = build_vault(settings)
        typer.echo(f"telemetry-vault home: {settings.home}", err=True)
        typer.echo(f"database: {vault.db.url.render_as_string(hide_password=True)}", err=True)
        typer.echo(f"key provider: {settings.effective_key_provider}", err=True)
        typer.echo(f"listening on http://{settings.host}:{settings.port} (docs at /docs)", err=True)
        try:
            uvicorn.run(
                create_app(vault),
                host=settings.host,
                port=settings.port,
                log_level="info",
                access_log=False,  # uvicorn's logs raw paths; vault.access logs templates
            )
        finally:
            vault.close()

    _run(body)


@app.command(cls=_Command)
def token(
    sub: Annotated[str, typer.Option("--sub", help="The caller's identity")],
    role: Annotated[list[str], typer.Option("--role", help="A role (repeatable)")],
    purpose: Annotated[list[str] | None, typer.Option("--purpose", help="Allowed purpose")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="Limit to dataset")] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: 90s, 15m, 1h, 2d")] = "1h",
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Print a token signed with the development key (audited)."""

    def body() -> None:
        seconds = parse_ttl(ttl)
        with _vault(home, database_url) as vault:
            typer.echo(
                vault.auth.issue_dev_token(
                    _operator(vault.settings),
                    sub=sub,
                    roles=role,
                    purposes=purpose or [],
                    datasets=dataset or [],
                    ttl_seconds=seconds,
                )
            )

    _run(body)


@dataset_app.command("create", cls=_Command)
def dataset_create(
    name: str,
    retention_days: Annotated[int, typer.Option("--retention-days", help="Days kept")],
    purpose: Annotated[list[str], typer.Option("--purpose", help="Allowed read purpose")],
    consent: Annotated[str, typer.Option(help="opt_in or opt_out")] = "opt_in",
    jurisdiction: Annotated[
        list[str] | None, typer.Option("--jurisdiction", help="Allowed ISO country code")
    ] = None,
    exclude_app: Annotated[list[str] | None, typer.Option("--exclude-app")] = None,
    exclude_domain: Annotated[list[str] | None, typer.Option("--exclude-domain")] = None,
    exclude_category: Annotated[list[str] | None, typer.Option("--exclude-category")] = None,
    erase_on_withdrawal: Annotated[
        bool, typer.Option("--erase-on-withdrawal", help="Withdrawn consent erases stored data")
    ] = False,
    replacement: Annotated[
        str,
        typer.Option(
            "--replacement",
            help="What redaction stores: placeholder ([EMAIL]) or pseudonym ([EMAIL:3f9a...]);"
            " fixed for the dataset's life",
        ),
    ] = "placeholder",
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Create a dataset."""
    spec: dict[str, Any] = {
        "name": name,
        "retention_days": retention_days,
        "purposes": purpose,
        "consent": consent,
        "erase_on_withdrawal": erase_on_withdrawal,
        "redaction": {"replacement": replacement},
        "exclusions": {
            "apps": exclude_app or [],
            "domains": exclude_domain or [],
            "categories": exclude_category or [],
        },
    }
    if jurisdiction:
        spec["jurisdictions"] = jurisdiction

    _call(home, database_url, lambda vault, operator: vault.datasets.create(operator, spec))


@dataset_app.command("list", cls=_Command)
def dataset_list(home: HomeOpt = None, database_url: DbOpt = None) -> None:
    """List datasets."""
    _call(home, database_url, lambda vault, operator: vault.datasets.list(operator))


@keys_app.command("list", cls=_Command)
def keys_list(home: HomeOpt = None, database_url: DbOpt = None) -> None:
    """Key inventory: ids, versions, ages (never key bytes)."""
    _call(home, database_url, lambda vault, operator: vault.keys.inventory(operator))


@keys_app.command("rotate", cls=_Command)
def keys_rotate(
    dataset: str,
    destroy_old: Annotated[
        bool, typer.Option("--destroy-old", help="Destroy old KEK versions (reach backups)")
    ] = False,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Rotate a dataset KEK: new version, keys rewrapped, old versions destroyed on request."""
    _call(
        home,
        database_url,
        lambda vault, operator: vault.lifecycle.rotate(operator, dataset, destroy_old=destroy_old),
    )


@keys_app.command("rotate-master", cls=_Command)
def keys_rotate_master(
    unseal: Annotated[
        bool, typer.Option("--unseal", help="Unseal the keyring (development only)")
    ] = False,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Reseal the local keyring under TVAULT_NEW_MASTER_PASSPHRASE (stop the service first)."""

    def body() -> None:
        with _vault(home, database_url) as vault:
            new = vault.settings.new_master_passphrase
            counts = vault.keys.rotate_master(
                _operator(vault.settings),
                new.get_secret_value() if new else None,
                scrypt_n=vault.settings.scrypt_n,
                allow_unseal=unseal,
            )
        _emit(counts)
        typer.echo(
            "done: set TVAULT_MASTER_PASSPHRASE to the new passphrase and restart every vault "
            "process",
            err=True,
        )

    _run(body)


@app.command(cls=_Command)
def erase(subject: str, home: HomeOpt = None, database_url: DbOpt = None) -> None:
    """Erase a person from every dataset (crypto-shred); prints the signed certificate."""
    _call(home, database_url, lambda vault, operator: vault.lifecycle.erase(operator, subject))


@app.command(cls=_Command)
def export(
    dataset: str,
    purpose: Annotated[str, typer.Option("--purpose", help="The declared purpose (audited)")],
    out: Annotated[Path | None, typer.Option("--out", help="File to write; default stdout")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339, exclusive")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Event kind")] = None,
    subject: Annotated[list[str] | None, typer.Option("--subject", help="Only this person")] = None,
    linkage: Annotated[str, typer.Option(help="purpose or export")] = "purpose",
    fmt: Annotated[str, typer.Option("--format", help="ndjson or parquet")] = "ndjson",
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Export a dataset as NDJSON or Parquet for a declared purpose, with an audited manifest."""

    def body() -> None:
        query = ExportQuery(since, until, tuple(kind or ()), tuple(subject or ()), linkage, fmt)
        if out is None and fmt == "parquet" and sys.stdout.isatty():
            raise e.BadRequest("a Parquet export is binary: write it to a file with --out")
        # The file is opened before the export starts: a path that cannot be written is bad
        # input (exit 2), with no export audited as sent. It is written beside and renamed
        # when whole, so an interrupted export leaves no file.
        target: tuple[Path, Path] | None = None  # (the file, the part written beside it)
        fd = -1
        if out is not None:
            if out.is_dir():
                raise e.BadRequest(f"--out {out} is a directory: name a file")
            target = (out, out.with_name(out.name + ".part"))
            try:
                fd = os.open(target[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except OSError as exc:
                raise e.BadRequest(f"--out {out} cannot be written: {exc.strerror}") from exc
        try:
            with _vault(home, database_url) as vault:
                export_id, chunks = vault.exports.start(
                    _operator(vault.settings), dataset, purpose, query
                )
                # A write that fails ends the stream here, so that its manifest is stored
                # and its end audited as interrupted while the vault is open.
                with contextlib.closing(chunks):
                    if target is None:
                        for chunk in chunks:
                            sys.stdout.buffer.write(chunk)
                        sys.stdout.flush()
                    else:
                        with os.fdopen(fd, "wb") as fh:
                            fd = -1  # closed with fh
                            for chunk in chunks:
                                fh.write(chunk)
                        os.replace(target[1], target[0])
                typer.echo(f"export {export_id} written", err=True)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            if target is not None:
                target[1].unlink(missing_ok=True)
            raise

    _run(body)


_RETIRE_FLAG = "--retire-source"


@app.command(
    "import",
    cls=_Command,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def import_(
    ctx: typer.Context,
    dataset: str,
    source: Annotated[
        str,
        typer.Argument(
            help="A JSONL/NDJSON, CSV or Parquet file, or a SQLAlchemy URL "
            "(with --table or --query)"
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl, csv, parquet or sql; default: from the suffix or the URL"
        ),
    ] = None,
    field_map: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=column, e.g. subject=user_email (repeatable)"),
    ] = None,
    mapping_file: Annotated[
        Path | None, typer.Option("--mapping-file", help='JSON: {"fields": {...}, "values": ...}')
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Events per batch; default the vault's most")
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="SQL: the table to import ([schema.]name)")
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="SQL: a SELECT to import (needs --key)")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="SQL: unique column(s) that order the rows; default the PK"),
    ] = None,
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="rfc3339, epoch_s or epoch_ms (the time column)")
    ] = "rfc3339",
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA zone of times without an offset, e.g. UTC"),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="SQL, --retire-source=replace: receives record ids"),
    ] = None,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Import a file or SQL table through the ingest path; resumable.

    --retire-source: after a verified import, overwrite and remove the file.

    --retire-source=replace (with --id-column) or =drop: retire a SQL table.

    See docs/import.md.
    """

    def body() -> int:
        where, retire = _retire_flag(source, ctx.args)
        document = _json_object(mapping_file, "mapping") if mapping_file is not None else None
        options = ImportOptions(
            fmt,
            tuple(field_map or ()),
            document,
            batch,
            table=table,
            query=query,
            key=tuple(key or ()),
            time_unit=time_unit,
            timezone=timezone,
            retire=retire,
            id_column=id_column,
        )
        with _vault(home, database_url) as vault, _import_progress() as progress:
            summary = vault.imports.run(
                _operator(vault.settings), dataset, where, options, progress
            )
        _emit(summary)
        return 0 if summary["verification"]["ok"] else EXIT_VERIFY_FAILED

    _run(body)


def _retire_flag(source: str, extra: list[str]) -> tuple[str, str | None]:
    """``--retire-source`` alone (a file: overwrite) or ``--retire-source=MODE`` (Typer has no
    option with an optional value, so the import command takes it from its extra arguments)."""
    tokens = list(extra)
    if source == _RETIRE_FLAG or source.startswith(_RETIRE_FLAG + "="):
        if not tokens or tokens[0].startswith("-"):
            raise e.BadRequest("missing SOURCE")
        source, tokens = tokens[0], [source, *tokens[1:]]
    retire: str | None = None
    for token in tokens:
        name, sep, mode = token.partition("=")
        if name != _RETIRE_FLAG or retire is not None or (sep and not mode):
            raise e.BadRequest(f"unexpected argument {token!r} (see tvault import --help)")
        retire = mode or "overwrite"
    return source, retire


@contextmanager
def _import_progress() -> Iterator[Callable[[int, int, int], None] | None]:
    """A rich progress bar (bytes of a file, rows of Parquet or SQL) on a terminal; nothing
    otherwise."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("importing", total=None)

        def update(done: int, total: int, rows: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{rows} rows")

        yield update


@app.command(cls=_Command)
def redact(
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset to re-redact")],
    batch: Annotated[
        int, typer.Option("--batch", help="Records per transaction")
    ] = REDACT_DEFAULT_BATCH,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Apply the current redaction rules to records redacted by older ones (resumable).

    Exit code 12 when records are left (locked by another writer): run it again."""

    def body() -> int:
        with _vault(home, database_url) as vault:
            summary = vault.redaction.run(_operator(vault.settings), dataset, batch_size=batch)
        _emit(summary)
        return 0 if summary["complete"] else EXIT_INCOMPLETE

    _run(body)


@app.command(cls=_Command)
def sweep(home: HomeOpt = None, database_url: DbOpt = None) -> None:
    """Delete everything past retention (keys of expired days first), except held data."""
    _call(home, database_url, lambda vault, operator: vault.retention.sweep(operator))


@app.command(cls=_Command)
def restore(
    backup: Annotated[
        str, typer.Argument(help="The backup: a SQLite file, or a SQLAlchemy URL of its database")
    ],
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Bring back records and screenshots from a backup, keeping every erasure made since."""
    _call(home, database_url, lambda vault, operator: vault.restore.restore(operator, backup))


SubjectOpt = Annotated[str | None, typer.Option("--subject", help="Hold one subject only")]


@hold_app.command("set", cls=_Command)
def hold_set(
    dataset: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log)")],
    subject: SubjectOpt = None,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Place a legal hold on a dataset or one subject of it."""

    def body() -> None:
        spec: dict[str, Any] = {"reason": reason}
        if subject is not None:
            spec["subject"] = subject
        with _vault(home, database_url) as vault:
            _emit(vault.retention.set_hold(_operator(vault.settings), dataset, spec))

    _run(body)


@hold_app.command("lift", cls=_Command)
def hold_lift(
    dataset: str, subject: SubjectOpt = None, home: HomeOpt = None, database_url: DbOpt = None
) -> None:
    """Lift a legal hold."""
    _call(
        home,
        database_url,
        lambda vault, operator: vault.retention.lift_hold(operator, dataset, subject),
    )


@audit_app.command("verify", cls=_Command)
def audit_verify(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="A checkpoint file kept outside")
    ] = None,
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Verify the hash chain, stored checkpoints and (optionally) an external checkpoint."""

    def body() -> int:
        external = _json_object(checkpoint, "checkpoint") if checkpoint is not None else None
        with _vault(home, database_url) as vault:
            report = vault.audit.verify(_operator(vault.settings), external)
        _emit(report)
        return 0 if report["ok"] else EXIT_VERIFY_FAILED

    _run(body)


@audit_app.command("checkpoint", cls=_Command)
def audit_checkpoint(
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed checkpoint")],
    home: HomeOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Sign the audit head and write it to a file to keep outside the vault."""

    def body() -> None:
        with _vault(home, database_url) as vault:
            doc = vault.audit.checkpoint(_operator(vault.settings))
        out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", "utf-8")
        typer.echo(f"checkpoint of {doc['seq']} entries written to {out}", err=True)

    _run(body)


def _terminated(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")


def main() -> None:
    """Console-script entry point. SIGTERM (what systemd, Kubernetes and ``timeout`` send)
    ends a command as Ctrl-C does: an export stores its manifest and audits itself as
    interrupted and leaves no ``.part`` file, an import audits where it stopped. (``tvault
    serve`` installs its server's own handlers.)"""
    signal.signal(signal.SIGTERM, _terminated)
    app(prog_name="tvault")


if __name__ == "__main__":  # pragma: no cover
    main()
