"""The integration harness (moto over HTTP, the app through `chalice.test.Client`) for the property tests."""
from tests.integration.conftest import api, aws, emulator, priced  # noqa: F401
