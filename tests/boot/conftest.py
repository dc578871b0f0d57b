"""The boot test's markers.

``boot``: `pytest -m "not boot"` leaves it out (e.g. in a second tox
environment: it tests the .deb, not the virtualenv).  ``timeout`` is
pytest-timeout's; registered here too so --strict-markers accepts it where
that plugin is not installed.
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "boot: builds the .deb and boots it in a container (root, ~1 min)")
    config.addinivalue_line("markers", "timeout(seconds): pytest-timeout's per-test limit")
