from django.db import models


class VersionSource(models.TextChoices):
    TRAINED = "trained", "Trained here"
    IMPORTED = "imported", "Imported"


PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"
