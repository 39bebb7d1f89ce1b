urlpatterns: list = []  # filled by ml.apis
