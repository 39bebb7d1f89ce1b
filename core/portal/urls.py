"""Portal shell URLs, mounted at the site root (domain portals live under /portal/<domain>/)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from core.portal.views import api_keys, audit, models, shell

app_name = "portal"

urlpatterns = [
    path("", shell.dashboard, name="dashboard"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="portal/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("organization/", shell.organization_switch, name="organization-switch"),
    path("jobs/demo/", shell.demo_job_start, name="demo-job"),
    path("jobs/<int:job_id>/", shell.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", shell.job_cancel_view, name="job-cancel"),
    path("api-keys/", api_keys.api_key_list_view, name="api-key-list"),
    path("api-keys/new/", api_keys.api_key_create_view, name="api-key-create"),
    path("api-keys/<int:key_id>/revoke/", api_keys.api_key_revoke_view, name="api-key-revoke"),
    path("models/", models.model_list_view, name="model-list"),
    path("models/<str:name>/", models.model_detail_view, name="model-detail"),
    path("models/<str:name>/versions/<int:number>/", models.model_version_view, name="model-version"),
    path("models/<str:name>/aliases/", models.model_alias_set_view, name="model-alias-set"),
    path("audit/", audit.audit_list_view, name="audit-list"),
]
