"""The whole stack as real processes: Redis, Plone served by runwsgi (with a
site created the way ``make run`` creates it) and the sidecar."""

from devstack.processes import free_port
from devstack.stack import Stack
from devstack.stack import StackConfig

import pytest
import requests
import secrets


@pytest.fixture(scope="session")
def stack_runner(tmp_path_factory):
    """The running Stack (processes); tests may restart the sidecar."""
    config = StackConfig(
        var_dir=tmp_path_factory.mktemp("stack"),
        secret=secrets.token_hex(32),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        plone_port=free_port(),
        sidecar_port=free_port(),
    )
    running = Stack(config, log=lambda message: None)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def stack(stack_runner):
    """Where the running stack is: URLs, ports, admin credentials."""
    return stack_runner.config


@pytest.fixture(scope="session")
def admin(stack):
    session = requests.Session()
    session.auth = (stack.admin_user, stack.admin_password)
    session.headers["Accept"] = "application/json"
    yield session
    session.close()


class PloneClient:
    """A browser's view of Plone: logs in through plone.restapi and then
    sends its JWT like Volto does."""

    def __init__(self, site_url: str, login: str, password: str):
        self.site_url = site_url
        self.login = login
        self.password = password
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        response = self.session.post(
            f"{site_url}/@login", json={"login": login, "password": password}
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['token']}"

    def alerts_token(self) -> dict:
        response = self.session.get(f"{self.site_url}/@alerts-token")
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def make_user(stack, admin):
    def make(username: str, roles: list[str]) -> PloneClient:
        password = secrets.token_urlsafe(12)
        response = admin.post(
            f"{stack.plone_url}/@users",
            json={
                "username": username,
                "email": f"{username}@school.example",
                "password": password,
                "roles": roles,
            },
        )
        assert response.status_code == 201, response.text
        return PloneClient(stack.plone_url, username, password)

    return make
