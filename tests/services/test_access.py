"""Who may read and change services and reviews: each role, own vs foreign services, other tenants."""

from __future__ import annotations

import httpx
import pytest

from ronda.core.authz import HUMAN_ROLES
from tests.conftest import Factory
from tests.services.helpers import SERVICES, add_service, review
from tests.support import assert_error

ADMINS = ("super_admin", "admin")
READ_ALL = ("super_admin", "admin", "analyst", "operator", "viewer")


@pytest.mark.parametrize("role", HUMAN_ROLES)
async def test_each_role_on_each_operation(client: httpx.AsyncClient, factory: Factory, role: str) -> None:
    admin = await factory.user("admin")
    caller = await factory.user(role, tenant_id=admin.tenant_id)
    own = await add_service(client, admin, name="Own", owner_id=caller.id)
    foreign = await add_service(client, admin, name="Foreign", owner_id=admin.id)
    unowned = await add_service(client, admin, name="Unowned")
    h = caller.headers

    listed = {s["name"] for s in (await client.get(SERVICES, headers=h)).json()["data"]}
    assert listed == ({"Own"} if role == "user" else {"Own", "Foreign", "Unowned"})
    # Reads: everyone sees its own; only the user role is blind to services it does not own.
    for target in (own, foreign, unowned):
        visible = role != "user" or target is own
        for path in (f"{SERVICES}/{target['id']}", f"{SERVICES}/{target['id']}/reviews"):
            response = await client.get(path, headers=h)
            if visible:
                assert response.status_code == 200, (role, path, response.text)
            else:
                assert_error(response, 404, "NOT_FOUND")

    # Create and delete: admins only.
    create = await client.post(SERVICES, headers=h, json={"name": f"New by {role}"})
    if role in ADMINS:
        assert create.status_code == 201, create.text
    else:
        assert_error(create, 403, "FORBIDDEN")

    # Edit and review: admins on any service; the user on its own only (others 404); the rest 403.
    for target in (own, foreign):
        patch = await client.patch(f"{SERVICES}/{target['id']}", headers=h, json={"data_location": "EU"})
        rev = await review(client, caller, target["id"], findings=f"by {role}")
        if role in ADMINS or (role == "user" and target is own):
            assert patch.status_code == 200 and patch.json()["data_location"] == "EU", patch.text
            assert rev.status_code == 201 and rev.json()["reviewer_id"] == caller.id, rev.text
        elif role == "user":
            assert_error(patch, 404, "NOT_FOUND")
            assert_error(rev, 404, "NOT_FOUND")
        else:
            assert_error(patch, 403, "FORBIDDEN")
            assert_error(rev, 403, "FORBIDDEN")

    delete = await client.delete(f"{SERVICES}/{foreign['id']}", headers=h)
    if role in ADMINS:
        assert delete.status_code == 204
    else:
        assert_error(delete, 403, "FORBIDDEN")
        assert_error(await client.delete(f"{SERVICES}/{own['id']}", headers=h), 403, "FORBIDDEN")
        assert (await client.get(f"{SERVICES}/{foreign['id']}", headers=admin.headers)).status_code == 200


async def test_an_owner_cannot_reassign_or_postpone(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    owner = await factory.user("user", tenant_id=admin.tenant_id)
    service = await add_service(client, admin, owner_id=owner.id)
    give_away = await client.patch(f"{SERVICES}/{service['id']}", headers=owner.headers, json={"owner_id": admin.id})
    assert_error(give_away, 403, "FORBIDDEN")
    same = await client.patch(f"{SERVICES}/{service['id']}", headers=owner.headers, json={"owner_id": owner.id})
    assert same.status_code == 200  # naming itself again changes nothing
    postpone = await client.patch(f"{SERVICES}/{service['id']}", headers=owner.headers,
                                  json={"next_review_date": "2099-01-01"})
    assert_error(postpone, 403, "FORBIDDEN")
    slower = await client.patch(f"{SERVICES}/{service['id']}", headers=owner.headers,
                                json={"review_frequency": "monthly"})
    assert_error(slower, 403, "FORBIDDEN")
    moved = await client.patch(f"{SERVICES}/{service['id']}", headers=admin.headers, json={"owner_id": admin.id})
    assert moved.status_code == 200 and moved.json()["owner_id"] == admin.id
    # Once reassigned, the former owner no longer sees it.
    assert_error(await client.get(f"{SERVICES}/{service['id']}", headers=owner.headers), 404, "NOT_FOUND")


async def test_other_tenants_services_are_not_found(client: httpx.AsyncClient, factory: Factory) -> None:
    mine = await factory.user("admin")
    theirs = await factory.user("admin")
    service = await add_service(client, theirs, name="Theirs")
    for method, path, body in (
        ("GET", f"{SERVICES}/{service['id']}", None),
        ("PATCH", f"{SERVICES}/{service['id']}", {"name": "Mine now"}),
        ("DELETE", f"{SERVICES}/{service['id']}", None),
        ("GET", f"{SERVICES}/{service['id']}/reviews", None),
        ("POST", f"{SERVICES}/{service['id']}/reviews", {"findings": "sneaky"}),
    ):
        assert_error(await client.request(method, path, headers=mine.headers, json=body), 404, "NOT_FOUND")
    assert (await client.get(SERVICES, headers=mine.headers)).json()["meta"]["total"] == 0
    # Filtering by their owner finds nothing either.
    filtered = await client.get(f"{SERVICES}?owner_id={theirs.id}", headers=mine.headers)
    assert filtered.json()["data"] == []
    still = (await client.get(f"{SERVICES}/{service['id']}", headers=theirs.headers)).json()
    assert still["name"] == "Theirs" and still["last_review_date"] is None


async def test_api_key_scopes_limit_services(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.user("admin")
    service = await add_service(client, admin)
    key = await factory.api_key(admin, ["services_read"])
    headers = {"X-API-Key": key}
    assert (await client.get(f"{SERVICES}/{service['id']}", headers=headers)).status_code == 200
    assert_error(await client.patch(f"{SERVICES}/{service['id']}", headers=headers, json={"name": "x"}), 403)
    assert_error(await client.post(f"{SERVICES}/{service['id']}/reviews", headers=headers, json={}), 403)
