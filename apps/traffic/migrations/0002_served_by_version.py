"""Detection runs and video analyses become `ml.ServedByVersion` rows: `model_version` PROTECT, required.

Before, deleting a model version set it to NULL on the rows it had produced. No path of the app
deletes versions (the registry keeps them immutable), so the column holds no NULL in practice;
if one does, the migration stops with a clear message instead of guessing a version or
deleting results.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def refuse_rows_without_a_version(apps: Any, schema_editor: Any) -> None:
    for name in ("DetectionRun", "VideoAnalysis"):
        missing = apps.get_model("traffic", name).objects.filter(model_version__isnull=True).count()
        if missing:
            raise RuntimeError(
                f"{missing} traffic {name} rows have no model version (it was deleted); "
                "set their model_version to a surviving version of the same model, or delete them, then migrate."
            )


class Migration(migrations.Migration):
    dependencies = [
        ("ml", "0001_initial"),
        ("traffic", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(refuse_rows_without_a_version, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="detectionrun",
            name="model_version",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="ml.modelversion"
            ),
        ),
        migrations.AlterField(
            model_name="videoanalysis",
            name="model_version",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="ml.modelversion"
            ),
        ),
    ]
