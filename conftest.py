"""Root conftest: keeps every test on loopback and gives each test session its own HOME for kubectl's cache."""
