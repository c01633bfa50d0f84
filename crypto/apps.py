from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _schedules_sync(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from crypto.services.schedules import schedules_sync

    if using == "default":
        schedules_sync()


class CryptoConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crypto"
    verbose_name = "Crypto market data"

    def ready(self) -> None:
        # Every `migrate` brings the beat schedule in step with the INGEST_INTERVAL_* settings.
        post_migrate.connect(_schedules_sync, sender=self, dispatch_uid="crypto.schedules_sync")
