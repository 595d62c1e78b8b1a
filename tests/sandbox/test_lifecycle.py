"""Setup completion, activation, generated data, scenarios, sync, delete, status overrides."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest

from waycore.models import Account, Balance, Connection, Transaction
from waycore.sandbox import Sandbox

from .helpers import activate, assert_error, create_connection, walk

pytestmark = pytest.mark.anyio

AMOUNT = re.compile(r"-?\d+\.\d{2}")


async def test_setup_completion_then_activation(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    conn = await create_connection(client, institutionId="chase")
    done = await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
    assert done.status_code == 200
    body = done.json()
    assert body["kind"] == "setup" and body["status"] == "pendingActivation"
    assert body["setup"]["status"] == "awaitingActivation"
    assert body["setup"]["actionRequiredBy"] == "waycore"
    assert body["setup"]["nextAction"] == "waitForActivation"
    again = await client.put(f"/v1/connections/{conn['id']}/setupCompletion", json={})
    assert_error(again, 409, "invalid_state")
    sandbox.advance_clock(sandbox.config.activation_seconds - 1)
    still = (await client.get(f"/v1/connections/{conn['id']}")).json()
    assert still["status"] == "pendingActivation"
    sandbox.advance_clock(1.5)
    ready = (await client.get(f"/v1/connections/{conn['id']}")).json()
    assert ready["kind"] == "ready" and ready["status"] == "active"
    assert "setup" not in ready
    assert ready["syncStatus"] == "syncing" and ready["lastSyncedAt"] is None
    assert Connection.from_api(ready).is_ready
    sandbox.advance_clock(sandbox.config.sync_seconds)
    idle = (await client.get(f"/v1/connections/{conn['id']}")).json()
    assert idle["syncStatus"] == "idle" and idle["lastSyncedAt"].endswith("Z")
    assert idle["errorCode"] is None and idle["errorMessage"] is None


async def test_setup_completion_rejects_a_body(client: httpx.AsyncClient) -> None:
    conn = await create_connection(client, institutionId="chase")
    response = await client.put(
        f"/v1/connections/{conn['id']}/setupCompletion", json={"acceptTerms": True}
    )
    assert_error(response, 400, "invalid_request")


async def test_activation_generates_accounts_balances_transactions(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    conn = await activate(client, sandbox, institutionId="chase")
    accounts = (await client.get("/v1/accounts", params={"connectionId": conn["id"]})).json()
    assert 2 <= len(accounts["data"]) <= 4
    for raw in accounts["data"]:
        account = Account.from_api(raw)
        assert account.id.startswith("acct_") and account.connection_id == conn["id"]
        assert account.status == "open" and account.currency == "USD"
        assert account.type in {"checking", "savings", "moneyMarket", "creditCard"}
        assert AMOUNT.fullmatch(account.current_balance or "")
        assert AMOUNT.fullmatch(account.available_balance or "")
        assert (await client.get(f"/v1/accounts/{account.id}")).json() == raw
    first = accounts["data"][0]["id"]
    balances = await walk(client, "/v1/balances", connectionId=conn["id"], accountId=first)
    assert len(balances) == sandbox.config.history_days
    parsed = [Balance.from_api(b) for b in balances]
    assert [b.date for b in parsed] == sorted((b.date for b in parsed), reverse=True)
    assert {b.source for b in parsed} <= {"bankProvided", "derived"}
    assert parsed[0].ledger_balance == accounts["data"][0]["currentBalance"]
    for newer, older in zip(parsed, parsed[1:], strict=False):  # ledger rolls forward by delta
        assert Decimal(newer.ledger_balance or "0") == Decimal(
            older.ledger_balance or "0"
        ) + Decimal(newer.posted_transaction_delta or "0")
    txns = await walk(client, "/v1/transactions", connectionId=conn["id"], limit=500)
    assert len(txns) > 60
    for raw in txns:
        txn = Transaction.from_api(raw)
        assert txn.id.startswith("txn_") and AMOUNT.fullmatch(txn.amount)
        assert txn.entry_type == ("credit" if Decimal(txn.amount) > 0 else "debit")
        assert txn.status in {"pending", "posted"}
        assert (txn.posted_date is None) == (txn.status == "pending")
    assert_error(await client.get("/v1/accounts/acct_nope"), 404, "not_found")
    one = await client.get(f"/v1/transactions/{txns[0]['id']}")
    assert one.status_code == 200 and one.json() == txns[0]


async def test_generated_data_is_deterministic(sandbox: Sandbox) -> None:
    from waycore.sandbox.generate import delegated_identity, generate_history
    from waycore.sandbox.records import ConnectionRec

    conn = ConnectionRec(
        id="conn_fixed",
        seq=1,
        entity_id="e",
        institution_id="chase",
        institution_name="JPMorgan Chase",
        portal_url=None,
        kind="setup",
        status="draft",
        created_at=1_700_000_000.0,
        updated_at=1_700_000_000.0,
    )
    counter = iter(range(1000))
    a = generate_history(7, conn, "US", 1_700_000_000.0, 90, lambda: next(counter))
    b = generate_history(7, conn, "US", 1_700_000_000.0, 90, lambda: next(counter))
    c = generate_history(8, conn, "US", 1_700_000_000.0, 90, lambda: next(counter))
    assert [t.to_json() for t in a.transactions] == [t.to_json() for t in b.transactions]
    assert [x.id for x in a.accounts] != [x.id for x in c.accounts]
    assert delegated_identity(7, "conn_fixed") == delegated_identity(7, "conn_fixed")


SCENARIOS = [
    ("scenario_reauth_required", "reauth-required.scenario.test", "ready", "reauthRequired"),
    ("scenario_errored", "errored.scenario.test", "setup", "errored"),
    ("scenario_invalid_config", "invalid-config.scenario.test", "setup", "invalidConfig"),
    ("scenario_paused", "paused.scenario.test", "ready", "paused"),
    ("scenario_revoked", "revoked.scenario.test", "ready", "revoked"),
]


@pytest.mark.parametrize(("institution", "host", "kind", "status"), SCENARIOS)
@pytest.mark.parametrize("by", ["institution", "portal", "catalog portal"])
async def test_scenarios(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    institution: str,
    host: str,
    kind: str,
    status: str,
    by: str,
) -> None:
    body: dict[str, str] = {"institutionId": institution}
    if by == "portal":
        body = {"portalUrl": f"https://{host}/x"}
    elif by == "catalog portal":
        catalog = (await client.get(f"/v1/institutions/{institution}")).json()
        body["portalUrl"] = catalog["canonicalPortalUrl"]
    conn = await activate(client, sandbox, **body)
    assert (conn["kind"], conn["status"]) == (kind, status)
    if status in ("errored", "invalidConfig", "reauthRequired"):
        assert conn["errorCode"] and conn["errorMessage"]
    if kind == "ready":
        assert conn["syncStatus"] == "idle"
        sync = await client.put(f"/v1/connections/{conn['id']}/sync")
        assert_error(sync, 409, "connection_not_ready")
    else:
        assert conn["setup"]["status"] in ("activationFailed", "needsCorrection")


async def test_the_invalid_config_bank_has_a_second_portal_that_activates(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    catalog = (await client.get("/v1/institutions/scenario_invalid_config")).json()
    assert catalog["additionalPortalUrls"] == [
        "https://invalid-config.scenario-bank.test/business/login"
    ]
    wrong = await activate(client, sandbox, institutionId="scenario_invalid_config")
    assert wrong["status"] == "invalidConfig"
    corrected = await activate(
        client,
        sandbox,
        institutionId="scenario_invalid_config",
        portalUrl=catalog["additionalPortalUrls"][0],
    )
    assert corrected["id"] != wrong["id"]
    assert (corrected["kind"], corrected["status"]) == ("ready", "active")


async def test_slow_scenario(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    conn = await activate(client, sandbox, portalUrl="https://slow.scenario.test/login")
    assert conn["status"] == "pendingActivation"
    sandbox.advance_clock(sandbox.config.slow_activation_seconds)
    after = (await client.get(f"/v1/connections/{conn['id']}")).json()
    assert (after["kind"], after["status"]) == ("ready", "active")


async def test_sync_rules(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    cfg = sandbox.config
    setup = await create_connection(client, institutionId="barclays")
    assert_error(
        await client.put(f"/v1/connections/{setup['id']}/sync"), 409, "connection_not_ready"
    )
    conn = await create_connection(client, institutionId="chase")
    await client.put(f"/v1/connections/{conn['id']}/setupCompletion")
    sandbox.advance_clock(cfg.activation_seconds + 0.5)
    first_sync = await client.put(f"/v1/connections/{conn['id']}/sync")
    assert_error(first_sync, 409, "sync_in_progress")  # the automatic first sync
    sandbox.advance_clock(cfg.sync_seconds)
    before = (await client.get(f"/v1/connections/{conn['id']}")).json()
    count = len(await walk(client, "/v1/transactions", connectionId=conn["id"], limit=500))
    accepted = await client.put(f"/v1/connections/{conn['id']}/sync")  # no cooldown yet
    assert accepted.status_code == 202
    assert accepted.json()["syncStatus"] == "syncing"
    assert_error(await client.put(f"/v1/connections/{conn['id']}/sync"), 409, "sync_in_progress")
    sandbox.advance_clock(cfg.sync_seconds)
    after = (await client.get(f"/v1/connections/{conn['id']}")).json()
    assert after["syncStatus"] == "idle" and after["lastSyncedAt"] > before["lastSyncedAt"]
    assert len(await walk(client, "/v1/transactions", connectionId=conn["id"], limit=500)) >= count
    cooling = await client.put(f"/v1/connections/{conn['id']}/sync")
    assert_error(cooling, 429, "sync_cooldown")
    retry_after = int(cooling.headers["Retry-After"])
    expected = cfg.sync_cooldown_seconds - cfg.sync_seconds
    assert expected - 2 <= retry_after <= expected + 1
    sandbox.advance_clock(retry_after - 10)
    later = await client.put(f"/v1/connections/{conn['id']}/sync")
    assert_error(later, 429, "sync_cooldown")
    assert int(later.headers["Retry-After"]) <= 11
    sandbox.advance_clock(11)
    assert (await client.put(f"/v1/connections/{conn['id']}/sync")).status_code == 202


async def test_manual_sync_moves_pending_to_posted(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    conn = await activate(client, sandbox, institutionId="chase")
    pending = await walk(client, "/v1/transactions", connectionId=conn["id"], status="pending")
    assert pending
    assert (await client.put(f"/v1/connections/{conn['id']}/sync")).status_code == 202
    sandbox.advance_clock(sandbox.config.sync_seconds)
    for txn in pending:
        now = (await client.get(f"/v1/transactions/{txn['id']}")).json()
        assert now["status"] == "posted" and now["postedDate"]
    accounts = (await client.get("/v1/accounts", params={"connectionId": conn["id"]})).json()
    for account in accounts["data"]:
        latest = (
            await client.get("/v1/balances", params={"accountId": account["id"], "limit": 1})
        ).json()["data"][0]
        assert latest["ledgerBalance"] == account["currentBalance"]


async def test_delete_removes_everything(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    conn = await activate(client, sandbox, institutionId="chase")
    keep = await activate(client, sandbox, institutionId="barclays")
    accounts = (await client.get("/v1/accounts", params={"connectionId": conn["id"]})).json()
    txns = (await client.get("/v1/transactions", params={"connectionId": conn["id"]})).json()
    response = await client.delete(f"/v1/connections/{conn['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_error(await client.get(f"/v1/connections/{conn['id']}"), 404, "not_found")
    assert_error(await client.delete(f"/v1/connections/{conn['id']}"), 404, "not_found")
    assert_error(await client.get(f"/v1/accounts/{accounts['data'][0]['id']}"), 404, "not_found")
    assert_error(await client.get(f"/v1/transactions/{txns['data'][0]['id']}"), 404, "not_found")
    for path in ("/v1/accounts", "/v1/balances", "/v1/transactions"):
        listed = (await client.get(path, params={"connectionId": conn["id"]})).json()
        assert listed["data"] == []
    everything = (await client.get("/v1/connections")).json()["data"]
    assert [c["id"] for c in everything] == [keep["id"]]
    assert (await client.get("/v1/accounts", params={"connectionId": keep["id"]})).json()["data"]


async def test_control_status_override(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    conn = await create_connection(client, institutionId="chase")
    path = f"/_sandbox/connections/{conn['id']}/status"
    active = await client.put(path, json={"status": "active"})
    assert active.status_code == 200
    assert (active.json()["kind"], active.json()["status"]) == ("ready", "active")
    accounts = (await client.get("/v1/accounts", params={"connectionId": conn["id"]})).json()
    assert accounts["data"]
    paused = (await client.put(path, json={"status": "paused"})).json()
    assert (paused["kind"], paused["status"]) == ("ready", "paused")
    custom = await client.put(
        path, json={"status": "reauthRequired", "errorCode": "mfa_expired", "errorMessage": "m"}
    )
    assert custom.json()["errorCode"] == "mfa_expired"
    draft = (await client.put(path, json={"status": "draft"})).json()
    assert (draft["kind"], draft["status"]) == ("setup", "draft")
    assert_error(await client.put(path, json={"status": "bogus"}), 400, "invalid_request")
    assert_error(
        await client.put("/_sandbox/connections/conn_x/status", json={"status": "active"}),
        404,
        "not_found",
    )
