"""Reaching the configured database: create it when it is missing, and say in one line what to do
when it cannot be reached (used by `migrate` and by manage.py for every command)."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from psycopg2 import errors as pg_errors

_MISSING = re.compile(r'database "[^"]+" does not exist')
# psycopg2 words a failed connection this way; errors raised by statements never are.
_CONNECT_FAILURE = re.compile(r"connection to server|could not connect|could not translate host name|timeout expired")


class DatabaseSetupError(RuntimeError):
    """The database cannot be used; the message says what to run."""


def database_create_if_missing(*, alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Create the configured database when its server answers and it does not exist yet; True
    when it was created now."""
    connection = connections[alias]
    try:
        connection.ensure_connection()
        return False
    except OperationalError as exc:
        if not _MISSING.search(str(exc)):
            raise DatabaseSetupError(connect_failure_line(exc) or str(exc).strip()) from exc
    name, user = connection.settings_dict["NAME"], connection.settings_dict["USER"]
    host, port = _host_port(connection.settings_dict)
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
    except Exception as exc:
        if isinstance(exc.__cause__, pg_errors.DuplicateDatabase):
            return False  # created meanwhile by another migrate
        if isinstance(exc.__cause__, pg_errors.InsufficientPrivilege):
            raise DatabaseSetupError(
                f'database "{name}" does not exist and user "{user}" may not create it: ask its administrator to '
                f"run `createdb -h {host} -p {port} -O {user} {name}`, then run migrate again"
            ) from exc
        raise
    return True


def connect_failure_line(exc: BaseException) -> str | None:
    """One line for an error of connecting to the database, or None for any other error."""
    text = str(exc).strip()
    if not isinstance(exc, OperationalError) or not (_CONNECT_FAILURE.search(text) or _MISSING.search(text)):
        return None
    config = connections[DEFAULT_DB_ALIAS].settings_dict
    where = _where(config)
    if _MISSING.search(text):
        return (
            f'database "{config["NAME"]}" does not exist on {where}: run `python manage.py migrate`, which creates it'
        )
    reason = text.splitlines()[-1].strip() if "FATAL" in text else text.splitlines()[0].strip()
    if settings.EMBEDDED_DATABASE:
        return (
            f"no database answers at {where}, the embedded server's address: start it with "
            f"`python manage.py dbserver start` (make run starts it by itself), or set DATABASE_URL ({reason})"
        )
    return f"cannot connect to the database at {where} named by DATABASE_URL: {reason}"


def _host_port(config: dict) -> tuple[str, str]:
    return str(config.get("HOST") or "localhost"), str(config.get("PORT") or 5432)


def _where(config: dict) -> str:
    return ":".join(_host_port(config))
