"""Django's test runner, counting: it writes what ran, passed, skipped and failed (test ids
and reasons) as JSON to $CACHEKIT_DJANGO_RESULT. Used by test_django_suite.py through
TEST_RUNNER in django_suite_settings.py."""

import json
import os

from django.test.runner import DiscoverRunner


def _test_id(test):
    # A failing subTest reports a _SubTest; count its test.
    return getattr(test, "test_case", test).id()


class CountingRunner(DiscoverRunner):
    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        failed = {_test_id(t) for t, _ in result.failures}
        errored = {_test_id(t) for t, _ in result.errors} - failed
        unexpected = {_test_id(t) for t in result.unexpectedSuccesses}
        skipped = {_test_id(t): reason for t, reason in result.skipped}
        bad = failed | errored | unexpected
        summary = {
            "ran": result.testsRun,
            "passed": result.testsRun - len(bad) - len(skipped),
            "skipped": skipped,
            "failed": sorted(failed),
            "errors": sorted(errored),
            "unexpected_successes": sorted(unexpected),
            "expected_failures": len(result.expectedFailures),
            "details": [f"{_test_id(t)}\n{tb}" for t, tb in result.failures + result.errors],
        }
        path = os.environ.get("CACHEKIT_DJANGO_RESULT")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
        return result
