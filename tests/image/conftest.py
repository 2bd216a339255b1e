"""The image test runs only when asked for by path (`make image-test` runs `pytest tests/image`):
it needs the image built and podman, and `make test` must not start containers."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if not any(a == HERE or HERE in a.parents for a in asked):
        return True
    return None
