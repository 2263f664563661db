"""Settings for Django's own cache tests (``tests/cache`` of the Django sdist, importable as
the package ``cache``) run against cachekitd: see test_django_suite.py."""

SECRET_KEY = "cachekit-django-suite"
INSTALLED_APPS = ["cache"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
# The suite's classes override CACHES; this is only what the module sees at import.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
TEST_RUNNER = "django_suite_runner.CountingRunner"
