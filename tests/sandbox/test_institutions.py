"""The institution catalog and its search."""

from __future__ import annotations

import httpx
import pytest

from waycore.models import Institution

from .helpers import assert_error, walk

pytestmark = pytest.mark.anyio

REQUIRED = {
    "chase",
    "customers_bank",
    "apple_bank",
    "peoples_bank_of_canada",
    "first_national_bank_of_pennsylvania",
    "united_bank",
}
SCENARIO_IDS = {
    "scenario_reauth_required",
    "scenario_errored",
    "scenario_invalid_config",
    "scenario_paused",
    "scenario_revoked",
    "scenario_slow",
}


async def _ids(client: httpx.AsyncClient, query: str) -> list[str]:
    page = (await client.get("/v1/institutions", params={"query": query})).json()
    return [i["institutionId"] for i in page["data"]]


async def test_catalog_is_large_and_well_formed(client: httpx.AsyncClient) -> None:
    items = await walk(client, "/v1/institutions", limit=7)
    ids = [i["institutionId"] for i in items]
    assert len(ids) == len(set(ids))
    real = [i for i in items if not i["institutionId"].startswith("scenario_")]
    assert len(real) >= 40
    assert set(ids) >= REQUIRED | SCENARIO_IDS
    assert {"US", "GB", "CA"} <= {i["country"] for i in real}
    assert len({i["country"] for i in real} - {"US", "GB", "CA"}) >= 3  # EU countries
    multi = [i for i in real if i["additionalPortalUrls"]]
    assert len(multi) >= 5
    for item in items:
        assert set(item) == {
            "institutionId",
            "name",
            "canonicalPortalUrl",
            "additionalPortalUrls",
            "country",
        }
        assert item["canonicalPortalUrl"].startswith("https://")
        Institution.from_api(item)


async def test_chase_has_several_portals(client: httpx.AsyncClient) -> None:
    chase = (await client.get("/v1/institutions/chase")).json()
    assert chase["name"] == "JPMorgan Chase"
    assert len(Institution.from_api(chase).portal_urls) >= 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CHASE", "chase"),
        ("jpmorgan", "chase"),
        ("apple", "apple_bank"),
        ("peoples_bank", "peoples_bank_of_canada"),
        ("pennsylvania", "first_national_bank_of_pennsylvania"),
        ("lloydsbank.co.uk", "lloyds"),
        ("www.chase.com", "chase"),
        ("https://online.lloydsbank.co.uk/personal/logon/login.jsp", "lloyds"),
        ("https://secure.chase.com/some/other/page", "chase"),
        ("Reauthentication", "scenario_reauth_required"),
    ],
)
async def test_search(client: httpx.AsyncClient, query: str, expected: str) -> None:
    assert expected in await _ids(client, query)


async def test_search_is_selective(client: httpx.AsyncClient) -> None:
    assert await _ids(client, "Barclays") == ["barclays"]
    assert await _ids(client, "no bank has this name") == []


async def test_unknown_institution_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/institutions/nowhere_bank"), 404, "not_found")


async def test_scenario_names(client: httpx.AsyncClient) -> None:
    got = (await client.get("/v1/institutions/scenario_reauth_required")).json()
    assert got["name"] == "Sandbox Scenario: Reauthentication Required"
    assert got["canonicalPortalUrl"] == "https://reauth-required.scenario-bank.test/login"


@pytest.mark.parametrize("host", ["revoked.scenario.test", "paused.scenario.test"])
async def test_portal_only_scenario_hosts_match_no_institution(
    client: httpx.AsyncClient, host: str
) -> None:
    assert await _ids(client, f"https://{host}/x") == []
    assert await _ids(client, host) == []
