from __future__ import annotations

from rest_framework import serializers

from crypto.models import Source


class DataQuerySerializer(serializers.Serializer):
    # The query parameter is called `source`, like DRF's Field.source attribute the stubs type.
    source = serializers.ChoiceField(choices=Source.values, required=False)  # type: ignore[assignment]
    limit = serializers.IntegerField(
        min_value=1,
        max_value=5000,
        default=100,
        help_text="records of the dataset to return (data_count counts all)",
    )
