"""Nothing that authenticates reaches a file of a failing run (issue 15, point 7).

A real Dagster run (file-backed instance, DEBUG Python logs captured into the event log,
compute logs on disk) calls the real Sentinel Hub client against a loopback server whose
token endpoint issues a bearer token and whose Process API answers 400 with a body that
echoes every request header (the bearer token) and a signed URL. Afterwards every file
under the test's folder is read back and grepped for the secret, the token and the URL
signature.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote_plus

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flair_pipeline import redaction
from flair_pipeline.sentinel2.sentinelhub import SentinelHubProvider, SentinelHubSettings
from tests.sentinel2.test_sentinelhub import END, GRID_A, PROCESS_PATH, START, TOKEN_PATH

SECRET = "Fq7-cl13nt/S3CR3T+=&x!"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.flairBEARERtoken.c2lnbmF0dXJl"
SIGNATURE = "hZ8sFLAIRsasSIG%2Bq3"
SIGNED_URL = f"https://store.example/s2/T31TCJ.tif?sv=2021-08-06&se=2030-01-01&sig={SIGNATURE}"
LOGGERS = [
    "requests_oauthlib.oauth2_session",
    "urllib3.connectionpool",
    "sentinelhub.download.sentinelhub_client",
    "flair_pipeline.sentinel2.sentinelhub",
]


def _echo_headers(request: Request) -> Response:
    said = {
        "error": {
            "status": 400,
            "reason": "Bad Request",
            "message": f"rejected; headers {dict(request.headers)}; asset {SIGNED_URL}",
        }
    }
    return Response(json.dumps(said), status=400, content_type="application/json")


def test_a_failing_run_writes_no_secret_token_or_signature(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
    )
    httpserver.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_echo_headers)
    settings = SentinelHubSettings(
        "flair-client",
        SECRET,
        sh_base_url=httpserver.url_for("/").rstrip("/"),
        sh_token_url=httpserver.url_for(TOKEN_PATH),
        cache_folder=str(tmp_path / "cache"),
        max_retries=0,
        retry_sleep_s=0.01,
        timeout_s=10,
    )

    @dg.asset
    def s2_probe(context) -> None:  # unannotated: Dagster rejects a string annotation
        provider = SentinelHubProvider(settings)
        (result,) = provider.fetch_each([GRID_A], START, END)
        context.log.info(f"fetched with settings {settings!r}")
        logging.getLogger("flair_pipeline.sentinel2.sentinelhub").warning(
            "asset href %s", SIGNED_URL
        )
        context.add_output_metadata({"answer": str(result)})
        raise result

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: DEBUG\n"
        f"  managed_python_loggers: {json.dumps(LOGGERS)}\n"
    )
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        result = dg.materialize([s2_probe], instance=instance, raise_on_error=False)
        assert not result.success
        events = instance.all_logs(result.run_id)
    finally:
        instance.dispose()
    text = "\n".join(serialize_value(e) for e in events)  # messages, errors, metadata
    assert "Bearer" in text or "access_token" in text, "the DEBUG token lines never got logged"
    assert "HTTP 400" in text  # the echoed error body made it into the event log ...
    assert "sig=***" in text  # ... masked

    needles = [SECRET, quote_plus(SECRET), TOKEN, SIGNATURE]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any("compute_logs" in str(p) for p in files)
    leaks = [(str(p), n) for p in files for n in needles if n.encode() in p.read_bytes()]
    assert not leaks, leaks


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer abc.DEF-12_3", "Authorization: Bearer ***"),
        (
            "{'access_token': 'tok123', 'expires_in': 3600}",
            "{'access_token': '***', 'expires_in': 3600}",
        ),
        (
            "grant_type=client_credentials&client_secret=s%2Bx&x=1",
            "grant_type=client_credentials&client_secret=***&x=1",
        ),
        (
            "https://h/x.tif?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12",
            "https://h/x.tif?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("a plain line about tokens and signatures", "a plain line about tokens and signatures"),
    ],
)
def test_redact_masks_each_kind(text: str, masked: str) -> None:
    assert redaction.redact(text) == masked
