"""Portal shell URLs, mounted at the site root. Plug-in apps mount their own pages (domains under
/portal/<domain>/, the model registry under /models/): see `core.apps.PortalAppConfig`."""

from django.contrib.auth import views as auth_views
from django.urls import path

from core.portal.views import api_keys, audit, shell

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
    path("audit/", audit.audit_list_view, name="audit-list"),
]
