"""Local development and `make run`: DEBUG on, embedded SQLite and filesystem broker by default."""

from core.settings.base import *  # noqa: F403

DEBUG = True
