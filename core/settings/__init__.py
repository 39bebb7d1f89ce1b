"""Settings entry point: base.py declares everything, DJANGO_ENV picks the override module."""

from core import env

_ENV = env.get("DJANGO_ENV")

if _ENV == "production":
    from core.settings.production import *  # noqa: F403
elif _ENV == "test":
    from core.settings.test import *  # noqa: F403
else:
    from core.settings.local import *  # noqa: F403
