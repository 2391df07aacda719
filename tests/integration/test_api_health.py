"""Health, version and metrics endpoints."""

import time

from conftest import expect_json, metric_values, project_version, text_doc, unique_word


def test_live_and_ready(shared_server):
    assert shared_server.get_json("/v1/health/live") == {"status": "live"}
    assert shared_server.get_json("/v1/health/ready") == {"status": "ready"}


def test_version(shared_server):
    v = shared_server.get_json("/v1/version")
    assert v["version"] == project_version()
    assert isinstance(v["schema_version"], int) and v["schema_version"] >= 1
    cuda = v["cuda"]
    assert isinstance(cuda, dict)
    assert isinstance(cuda["compiled"], bool)
    assert isinstance(cuda["devices"], int) and cuda["devices"] >= 0
    assert isinstance(cuda["description"], str)
    assert isinstance(v["cpu"], str) and v["cpu"]


def test_json_content_type_on_every_json_endpoint(shared_server):
    for path in ("/v1/health/live", "/v1/health/ready", "/v1/version", "/v1/collections",
                 "/v1/documents", "/v1/tasks"):
        expect_json(shared_server.get(path), 200)
    expect_json(shared_server.post("/v1/retrieval", json={"query": "anything at all"}), 200)


def test_metrics_after_upload(server):
    word = unique_word()
    server.ingest([("metrics.txt", text_doc(word))])
    server.hits(word)
    r = server.metrics()
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    text = r.text

    reqs = metric_values(text, "ragd_http_requests_total")
    assert reqs, "no ragd_http_requests_total samples:\n" + text
    assert all("route" in labels and "status" in labels for labels, _ in reqs), reqs
    assert any(labels["status"] == "202" and v >= 1 for labels, v in reqs), reqs
    assert any(labels["status"] == "200" and v >= 1 for labels, v in reqs), reqs

    docs = metric_values(text, "ragd_documents")
    assert docs and sum(v for _, v in docs) >= 1, "ragd_documents missing or 0:\n" + text
    chunks = metric_values(text, "ragd_chunks")
    assert chunks and sum(v for _, v in chunks) >= 1, "ragd_chunks missing or 0:\n" + text
    assert sum(v for _, v in metric_values(text, "ragd_collections")) >= 1, text
    tasks = metric_values(text, "ragd_tasks")
    assert any(labels.get("state") == "done" and v >= 1 for labels, v in tasks), tasks
    assert metric_values(text, "ragd_ingest_queue_length"), text
    assert "ragd_http_request_duration_seconds" in text
    assert metric_values(text, "ragd_http_request_duration_seconds_count"), text


def test_metrics_count_grows(server):
    def total(text):
        return sum(v for _, v in metric_values(text, "ragd_http_requests_total"))

    before = total(server.metrics().text)
    for _ in range(5):
        server.get_json("/v1/health/live")
    # a request is counted when it completes, which may be just after the client has its answer
    deadline = time.monotonic() + 5
    while True:
        after = total(server.metrics().text)
        if after >= before + 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after >= before + 5
