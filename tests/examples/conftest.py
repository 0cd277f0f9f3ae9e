"""One member service per test module, on the session's RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .members import MembersProcess, Names


@pytest.fixture(scope="module")
def names(amqp_url: str) -> Iterator[Names]:
    names = Names.unique()
    yield names
    names.clean_up(amqp_url)


@pytest.fixture(scope="module")
def members(
    amqp_url: str, names: Names, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MembersProcess]:
    work = tmp_path_factory.mktemp("members")
    service = MembersProcess(work / "members.db", amqp_url, names, work / "members.log")
    service.wait_consuming()
    yield service
    service.stop()


@pytest.fixture
def http(members: MembersProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=members.url, timeout=10) as client:
        yield client
