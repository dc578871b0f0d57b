"""The boot test's marker: `pytest -m "not boot"` leaves it out (e.g. in a second tox environment)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "boot: builds the .deb and boots it in a container (root, ~1-2 min)")
