"""Portal forms of the traffic operator pages."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.traffic.choices import CountBucket, InDirection
from apps.traffic.training_recipe import ARCHITECTURES


class CameraForm(forms.Form):
    name = forms.CharField(max_length=100)
    location = forms.CharField(max_length=200, required=False)
    line_name = forms.CharField(max_length=100, required=False, initial="line-1", label="Counting line name")
    x1 = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.05)
    y1 = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.6)
    x2 = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.95)
    y2 = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.6)
    in_direction = forms.ChoiceField(choices=InDirection.choices, initial=InDirection.DOWN)

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        lines = []
        if data.get("line_name") and None not in (data.get("x1"), data.get("y1"), data.get("x2"), data.get("y2")):
            lines.append(
                {
                    "name": data["line_name"],
                    "points": [[data["x1"], data["y1"]], [data["x2"], data["y2"]]],
                    "in_direction": data["in_direction"],
                }
            )
        return {"name": data["name"], "location": data.get("location") or "", "lines": lines}


class DetectForm(forms.Form):
    image = forms.FileField()
    conf = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.25, label="Confidence threshold")


class VideoForm(forms.Form):
    video = forms.FileField(help_text="MP4 or AVI")
    anti_flicker_frames = forms.IntegerField(min_value=1, max_value=100, initial=3)


class CountsForm(forms.Form):
    start = forms.DateTimeField(required=False)
    end = forms.DateTimeField(required=False)
    bucket = forms.ChoiceField(choices=CountBucket.choices, initial=CountBucket.HOUR, required=False)
    line = forms.CharField(required=False)


class TrainForm(forms.Form):
    dataset = forms.FileField(help_text="Zip of a YOLO dataset: data.yaml, images/, labels/")
    model = forms.RegexField(r"^[a-z0-9][a-z0-9._-]{0,99}$", max_length=100, initial="traffic-detector")
    epochs = forms.IntegerField(min_value=1, max_value=1000, initial=30)
    imgsz = forms.IntegerField(min_value=32, max_value=2048, initial=640)
    batch = forms.IntegerField(min_value=1, max_value=512, initial=16)
    architecture = forms.ChoiceField(choices=[(a, a) for a in ARCHITECTURES], initial="yolo11n", required=False)
    base_version = forms.IntegerField(min_value=1, required=False, help_text="Fine-tune this version instead")
