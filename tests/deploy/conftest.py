"""Fixtures shared by the deployment tests."""

from __future__ import annotations

import pytest

from tests.support.image_venv import ImageVenv, image_venv, plain_venv


@pytest.fixture(scope="session")
def image() -> ImageVenv:
    """falproxy as the Dockerfile installs it (built once per source hash, then cached)."""
    return image_venv()


@pytest.fixture(scope="session")
def plain_install(image: ImageVenv) -> ImageVenv:
    """The same wheel installed with no extras (``pip install <wheel>``), as users start."""
    return plain_venv(image)
