"""Django's `migrate`, which first creates the configured database when it does not exist yet."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from kasparro.database import DatabaseSetupError, database_create_if_missing


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if database_create_if_missing(alias=options["database"]):
                self.stdout.write(f"Created the database {self._name(options['database'])}")
        except DatabaseSetupError as exc:
            raise CommandError(str(exc)) from exc
        super().handle(*args, **options)

    @staticmethod
    def _name(alias: str) -> str:
        from django.db import connections

        return str(connections[alias].settings_dict["NAME"])
