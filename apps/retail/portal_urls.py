"""`/portal/retail/…`: the merchant portal."""

from django.urls import path

from apps.retail import views

app_name = "retail"

urlpatterns = [
    path("", views.home, name="home"),
    path("events/", views.events, name="events"),
    path("items/", views.item_list, name="item-list"),
    path("items/<str:item_id>/", views.item_detail, name="item-detail"),
    path("customers/", views.customer_list, name="customer-list"),
    path("customers/<str:customer_id>/", views.customer_detail, name="customer-detail"),
    path("training-runs/<int:run_id>/", views.training_run, name="training-run"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/v<int:number>/", views.model_detail, name="model-version"),
]
