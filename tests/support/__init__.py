"""What tests in every folder share, imported as `support` (e.g. `from support.polling import wait_for`).

`tests/` has no __init__.py, so pytest's default import mode puts it first on sys.path when it loads
tests/conftest.py, before any test module: the same way tests import `ahead` and `report_factory`.
"""
