from django.db import models


class Category(models.TextChoices):
    """What Tessera counts. Model classes map onto these through a model's class map."""

    CAR = "car", "Car"
    TRUCK = "truck", "Truck"
    BUS = "bus", "Bus"
    MOTORCYCLE = "motorcycle", "Motorcycle"
    BICYCLE = "bicycle", "Bicycle"
    PERSON = "person", "Person"


class InDirection(models.TextChoices):
    """The way of travel (in image terms) a counting line counts as "in"."""

    UP = "up", "Up"
    DOWN = "down", "Down"
    LEFT = "left", "Left"
    RIGHT = "right", "Right"


class CrossingDirection(models.TextChoices):
    IN = "in", "In"
    OUT = "out", "Out"


class CountBucket(models.TextChoices):
    QUARTER_HOUR = "15m", "15 minutes"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


MODEL_KIND = "traffic.yolo_detector"
DEFAULT_MODEL_NAME = "traffic-detector"

# The job kind of a video's tracking and counting (its function: `apps.traffic.tasks.video_count`).
VIDEO_JOB_KIND = "traffic.video_count"
# The app's domain: the prefix of its model kinds and job kinds, the first part of its media names.
DOMAIN = "traffic"
