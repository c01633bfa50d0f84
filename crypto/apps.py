import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

logger = logging.getLogger(__name__)


def _schedules_sync(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from crypto.services.ingest.schedules import schedules_sync

    if using != "default":
        return
    executor = MigrationExecutor(connections[using])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        # Migrated back (or only part of the way): the schedule tables may lack what the sync writes.
        logger.info("beat schedule not synced: not every migration is applied")
        return
    schedules_sync()


class CryptoConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crypto"
    verbose_name = "Crypto market data"

    def ready(self) -> None:
        # Every `migrate` brings the beat schedule in step with the INGEST_INTERVAL_* settings.
        post_migrate.connect(_schedules_sync, sender=self, dispatch_uid="crypto.schedules_sync")
