from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    label = "ml"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from ml import training  # noqa: F401  (registers the ml.train job function)
