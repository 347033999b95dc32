"""The access log's head goes to Prefect too: a flow run publishes the anchor as an
artifact, a copy outside this machine's disk (real Prefect API: prefect_test_harness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotlist import audit


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with (
        prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_HOME: home}),
        prefect_test_harness(server_startup_timeout=240),
    ):
        yield


def test_a_flow_run_publishes_the_anchor_as_an_artifact(prefect_api: None, tmp_path: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    audit.append(
        tmp_path,
        audit.AccessRecord("jdoe", "CA0190000", "patrol", "plate 7ABC123", "granted", "cli"),
    )

    @flow(name="anchor-test")
    def anchor_flow(data_dir: str) -> dict[str, object]:
        made = audit.anchor(Path(data_dir), "purge flow")
        audit.publish_artifact(made)
        return {"seq": made.seq, "hmac": made.hmac}

    result = anchor_flow(str(tmp_path))
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["access-log-anchor"]))
        )
    assert artifact.flow_run_id is not None
    assert str(result["hmac"]) in str(artifact.data)
    assert "7ABC123" not in str(artifact.data) + str(artifact.description)
