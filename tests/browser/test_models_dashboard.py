"""Issue 16 in the dashboard, in a real Chromium against a live `descent up` and its worker:
a succeeded job's model panel (the kept epoch, the bundle and ONNX downloads, predictions
on pasted rows and on an uploaded CSV, a refused row named by its line and column), its
project, tags and note edited in place, the jobs table's filter box and project picker, and
the projects page in the navigation."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
from browser_support import LiveServer, PageGuard

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SPECIES = {"setosa", "versicolor", "virginica"}


def sign_in(page: Any, server: LiveServer) -> None:
    r = page.request.post(f"{server.url}/v1/session", data={"token": server.token})
    assert r.status == 201, r.text()


def trained_job(server: LiveServer, **labels: Any) -> dict[str, Any]:
    """An iris classifier trained by the server's worker, with ``labels`` beside its spec."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        spec = {
            "dataset": {"name": "iris"},
            "model": {"kind": "linear"},
            "training": {"epochs": 20},
        }
        r = client.post("/v1/jobs", json={**spec, **labels})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 90
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
    assert job["status"] == "succeeded" and job["has_bundle"], job
    return job


def test_a_succeeded_jobs_model_panel_downloads_and_predicts(
    page: Any, live_server: LiveServer, page_guard: PageGuard, tmp_path: Path, screenshot: Any
) -> None:
    page_guard.allow_console(r"status of 422 \(Unprocessable")  # the bad row provoked here
    project = f"iris-{uuid.uuid4().hex[:6]}"
    job = trained_job(live_server, project=project, tags={"stage": "baseline"}, note="first try")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/jobs/{job['id']}")

    panel = page.get_by_test_id("model-panel")
    panel.wait_for()
    assert f"epoch {job['saved_epoch']}" in page.get_by_test_id("saved-epoch").inner_text()
    assert page.get_by_test_id("project-chip").inner_text() == project
    assert page.get_by_test_id("tag-chip").all_inner_texts() == ["stage=baseline"]

    # The bundle downloads as a zip a user can load; the ONNX file beside it.
    with page.expect_download() as download:
        page.get_by_test_id("download-bundle").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as zf:
        assert {"model.json", "model.pt", "model.onnx", "README.txt"} <= set(zf.namelist())
    assert "format=onnx" in (page.get_by_test_id("download-onnx").get_attribute("href") or "")

    # Pasted rows, as CSV with the header the panel suggests (the model's feature names).
    box = page.get_by_test_id("predict-input")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=predict-input]').placeholder.includes('petal')"
    )
    assert box.get_attribute("placeholder").startswith(",".join(IRIS))
    box.fill(",".join(IRIS) + "\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    page.get_by_test_id("predict-run").click()
    predicted = page.get_by_test_id("prediction")
    predicted.nth(1).wait_for()
    assert set(predicted.all_inner_texts()) <= SPECIES and predicted.count() == 2
    assert page.get_by_test_id("predict-table").locator("th").all_inner_texts()[2:] == [
        "p(setosa)",
        "p(versicolor)",
        "p(virginica)",
    ]
    screenshot(page, "model-panel")

    # A value that is not a number: the server's 422, naming the line and the column.
    box.fill(",".join(IRIS) + "\n5.1,abc,1.4,0.2\n")
    page.get_by_test_id("predict-run").click()
    error = page.get_by_test_id("predict-error")
    error.wait_for()
    assert "line 2" in error.inner_text() and "sepal width (cm)" in error.inner_text()

    # An uploaded CSV file, columns in another order.
    csv = tmp_path / "rows.csv"
    csv.write_text(",".join(reversed(IRIS)) + "\n0.2,1.4,3.5,5.1\n")
    box.fill("")
    page.get_by_test_id("predict-file").set_input_files(str(csv))
    page.get_by_test_id("predict-run").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=prediction]').length === 1"
    )
    assert predicted.inner_text() in SPECIES


def test_tags_and_note_are_edited_on_the_job_and_found_by_the_filter_and_project(
    page: Any, live_server: LiveServer, page_guard: PageGuard
) -> None:
    page_guard.allow_console(r"status of 422 \(Unprocessable")  # the bad filter provoked here
    project = f"proj-{uuid.uuid4().hex[:6]}"
    mark = uuid.uuid4().hex[:8]
    job = trained_job(live_server, project=project)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/#/jobs/{job['id']}")

    # Add a tag and a note, save: the chips and the API say so.
    page.get_by_test_id("labels").wait_for()
    page.get_by_test_id("tag-add").click()
    page.get_by_test_id("tag-key").last.fill("reviewed")
    page.get_by_test_id("tag-value").last.fill(mark)
    page.get_by_test_id("note-input").fill("looks converged")
    page.get_by_test_id("labels-save").click()
    page.get_by_test_id("labels-message").wait_for()
    assert page.get_by_test_id("tag-chip").all_inner_texts() == [f"reviewed={mark}"]
    with httpx.Client(base_url=live_server.url, headers=live_server.headers) as client:
        stored = client.get(f"/v1/jobs/{job['id']}").json()
    assert stored["tags"] == {"reviewed": mark} and stored["note"] == "looks converged"

    # The jobs table finds it by the filter language…
    page.goto(f"{live_server.url}/#/jobs")
    page.get_by_test_id("filter-query").fill(f"tags.reviewed = '{mark}' and status = 'succeeded'")
    page.get_by_test_id("filter-apply").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=job-row]').length === 1")
    assert page.get_by_test_id("job-row").get_attribute("data-job-id") == job["id"]
    # …and says where a filter is wrong.
    page.get_by_test_id("filter-query").fill("saved.val_accuracy > and")
    page.get_by_test_id("filter-apply").click()
    error = page.get_by_test_id("filter-error")
    error.wait_for()
    assert "column" in error.inner_text()

    # Projects are in the navigation; a project's link lists its jobs.
    page.get_by_test_id("nav-projects").click()
    row = page.get_by_test_id("project-row").filter(has_text=project)
    row.wait_for()
    row.get_by_test_id("project-link").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=job-row]').length === 1")
    assert page.get_by_test_id("job-row").get_attribute("data-job-id") == job["id"]
    assert page.get_by_test_id("filter-project").input_value() == project
