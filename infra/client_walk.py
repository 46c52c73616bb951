"""The client generated from openapi.yaml, installed as a package, against the dev server.

Run by infra/client.sh in the throwaway virtualenv it installed the generated
`connectors_client` into, with CLIENT_BASE (the dev server), CLIENT_KEY (a key with every
scope for the fresh entity CLIENT_ENTITY) and CLIENT_DOCUMENT_VERSION (openapi.yaml's
info.version). Every call goes through the generated functions and every answer is parsed
by them into the generated models (`raise_on_unexpected_status`: an undocumented status
fails). Prints one line: the status of each step.
"""

import importlib.metadata
import os
import unittest
import uuid

from connectors_client import AuthenticatedClient, Client
from connectors_client.api.integrations import connect, credentials, disconnect, get, list_, report, restore
from connectors_client.models import (
    ConnectorType,
    ConnectRequest,
    ConnectRequestConfig,
    CredentialsRequest,
    CredentialsRequestCredentials,
    Error,
    Health,
    ListResponse,
    Mode,
    RowResponse,
    SyncReportRequest,
)

SECRET_VALUES = ("sk_test_walk_123", "pk_test_walk_123", "whsec_walk_123")


class GeneratedClient(unittest.TestCase):
    def setUp(self):
        self.client = self.enterContext(
            AuthenticatedClient(
                base_url=os.environ["CLIENT_BASE"], token=os.environ["CLIENT_KEY"], raise_on_unexpected_status=True
            )
        )
        self.entity = uuid.UUID(os.environ["CLIENT_ENTITY"])

    def test_the_installed_package_has_the_document_s_version(self):
        self.assertEqual(importlib.metadata.version("connectors-client"), os.environ["CLIENT_DOCUMENT_VERSION"])

    def test_a_missing_key_is_a_401_error_envelope(self):
        anonymous = self.enterContext(Client(base_url=os.environ["CLIENT_BASE"], raise_on_unexpected_status=True))
        answer = get.sync_detailed(ConnectorType.STRIPE, client=anonymous)
        self.assertEqual(answer.status_code, 401)
        self.assertIsInstance(answer.parsed, Error)
        self.assertEqual(answer.parsed.code, "missing_api_key")
        self.assertEqual(answer.parsed.request_id, answer.headers["x-request-id"])

    def test_the_lifecycle(self):
        stripe, steps = ConnectorType.STRIPE, []

        def step(name, answer, status, model):
            steps.append(f"{name} {answer.status_code}")
            self.assertEqual(answer.status_code, status, f"{name}: {answer.content!r}")
            for value in SECRET_VALUES:
                self.assertNotIn(value.encode(), answer.content, f"{name} returned a credential value")
            if model is None:
                self.assertIsNone(answer.parsed)
            else:
                self.assertIsInstance(answer.parsed, model, name)
            return answer.parsed

        body = ConnectRequest(
            display_name="Payments", config=ConnectRequestConfig.from_dict({"statement_descriptor": "ACME"})
        )
        row = step("connect", connect.sync_detailed(stripe, client=self.client, body=body), 201, RowResponse).data
        self.assertEqual(
            (row.connector_type, row.mode, row.is_active, row.entity_id), (stripe, Mode.SANDBOX, True, self.entity)
        )
        self.assertEqual((row.display_name, row.config["statement_descriptor"]), ("Payments", "ACME"))
        self.assertEqual((row.credentials_masked, row.has_webhook_secret), ([], False))
        connector_id = row.id

        secret = CredentialsRequest(
            credentials=CredentialsRequestCredentials.from_dict(
                {"secret_key": SECRET_VALUES[0], "publishable_key": SECRET_VALUES[1]}
            ),
            webhook_secret=SECRET_VALUES[2],
        )
        answer = credentials.sync_detailed(stripe, client=self.client, body=secret)
        row = step("credentials", answer, 200, RowResponse).data
        self.assertEqual(sorted(row.credentials_masked), ["publishable_key", "secret_key"])
        self.assertTrue(row.has_webhook_secret)

        row = step("get", get.sync_detailed(stripe, client=self.client), 200, RowResponse).data
        self.assertEqual(row.id, connector_id)
        row = step("get-by-id", get.sync_detailed(connector_id, client=self.client), 200, RowResponse).data
        self.assertEqual(row.connector_type, stripe)

        listed = step("list", list_.sync_detailed(client=self.client, limit=10, is_active=True), 200, ListResponse)
        self.assertEqual((listed.object_, listed.url, listed.has_more), ("list", "/v1/integrations", False))
        self.assertEqual([r.id for r in listed.data], [connector_id])

        failed = SyncReportRequest.from_dict({"outcome": "failed", "error": {"code": "auth_failed", "message": "revoked"}})
        row = step("sync-report", report.sync_detailed(stripe, client=self.client, body=failed), 200, RowResponse).data
        self.assertEqual((row.health, row.sync_error), (Health.AUTH_FAILED, "auth_failed: revoked"))
        broken = step(
            "list-health", list_.sync_detailed(client=self.client, health=Health.AUTH_FAILED), 200, ListResponse
        )
        self.assertEqual([r.id for r in broken.data], [connector_id])
        late = SyncReportRequest.from_dict({"outcome": "succeeded", "finished_at": "2020-01-01T00:00:00Z"})
        row = step("sync-report-late", report.sync_detailed(stripe, client=self.client, body=late), 200, RowResponse).data
        self.assertEqual(row.health, Health.AUTH_FAILED)
        bad = SyncReportRequest.from_dict({"outcome": "failed"})
        refused = step("sync-report-422", report.sync_detailed(stripe, client=self.client, body=bad), 422, Error)
        self.assertEqual(refused.param, "error")

        row = step("disconnect", disconnect.sync_detailed(stripe, client=self.client), 200, RowResponse).data
        self.assertFalse(row.is_active)
        self.assertIsNotNone(row.disconnected_at)
        self.assertIsNotNone(row.recoverable_until)

        row = step("restore", restore.sync_detailed(stripe, client=self.client), 200, RowResponse).data
        self.assertEqual((row.id, row.is_active, row.recoverable_until), (connector_id, True, None))
        self.assertEqual(sorted(row.credentials_masked), ["publishable_key", "secret_key"])

        step("delete", disconnect.sync_detailed(stripe, client=self.client, permanent=True), 204, None)
        gone = step("get-after-delete", get.sync_detailed(stripe, client=self.client), 404, Error)
        self.assertEqual(gone.code, "not_found")
        print(f"\nclient walk: {', '.join(steps)}", flush=True)


if __name__ == "__main__":
    unittest.main()
