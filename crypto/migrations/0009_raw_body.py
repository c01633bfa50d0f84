from django.db import migrations


class Migration(migrations.Migration):
    """The model is called what the code calls it, a raw body; its table stays raw_crypto_data."""

    dependencies = [
        ('crypto', '0008_sources_are_configuration'),
    ]

    operations = [
        migrations.RenameModel(old_name='RawCryptoData', new_name='RawBody'),
    ]
