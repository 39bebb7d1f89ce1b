"""Production: refuses to start without a secret key and allowed hosts; HTTPS everywhere."""

from django.core.exceptions import ImproperlyConfigured

from core import env
from core.settings.base import *  # noqa: F403

if not env.is_set("SECRET_KEY") or len(env.get("SECRET_KEY")) < 50:
    raise ImproperlyConfigured("DJANGO_ENV=production needs SECRET_KEY (at least 50 random characters).")
if not env.is_set("ALLOWED_HOSTS") or not env.get_list("ALLOWED_HOSTS"):
    raise ImproperlyConfigured("DJANGO_ENV=production needs ALLOWED_HOSTS (comma-separated host names).")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# /healthz is probed over plain HTTP by load balancers inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
