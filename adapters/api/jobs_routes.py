"""Values export (spec §8.5) and jobs (spec §15): start an export, follow it, download it."""

from __future__ import annotations

import math
from typing import Any

from adapters.api.context import Call
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiResponse
from adapters.api.routes import Access, RouteTable
from adapters.api.rpc import call, read_stream
from m2x.runtime.timefmt import iso_ms
from m2x.storage.v1 import storage_pb2 as pb

CSV = "text/csv"


def job_json(c: Call, job: pb.Job) -> dict[str, Any]:
    """The job object of spec §22.9."""
    return {
        "id": job.id,
        "url": c.url(f"/v2/jobs/{job.id}"),
        "state": job.state,
        "output": {"rows": job.rows} if job.state == "complete" else None,
        "errors": [job.error] if job.error else None,
        "started": iso_ms(job.started_ms) if job.started_ms else None,
        "finished": iso_ms(job.finished_ms) if job.finished_ms else None,
        "created": iso_ms(job.created_ms),
        "updated": iso_ms(job.updated_ms),
        "result": {"url": c.url(f"/v2/exports/{job.result_token}.csv")}
        if job.result_token
        else None,
    }


async def export_values(c: Call) -> ApiResponse:
    params: dict[str, Any] = dict(c.request.query)
    fields = FieldReader(params)
    request = pb.ExportValuesRequest(
        caller=c.caller(), device=c.device_ref(),
        streams=list(fields.string_list("streams", split_commas=True)),
        start_ms=fields.timestamp_ms("start"), end_ms=fields.timestamp_ms("end"),
        limit=fields.integer("limit", 0, lo=0), include_location=fields.flag("include_location"),
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ExportValues, request)
    return ApiResponse(
        202, {"status": "accepted"}, headers={"Location": c.url(f"/v2/jobs/{reply.job.id}")}
    )


async def view_job(c: Call) -> ApiResponse:
    reply = await call(
        c.services.storage.GetJob, pb.GetJobRequest(caller=c.caller(), id=c.params["job"])
    )
    return ApiResponse(200, job_json(c, reply.job))


async def list_jobs(c: Call) -> ApiResponse:
    fields = FieldReader(dict(c.request.query))
    request = pb.ListJobsRequest(
        caller=c.caller(), state=fields.string("state"), device_id=fields.string("device"),
        page=fields.integer("page", 1, lo=1), limit=fields.integer("limit", 10, lo=1, hi=100),
    )  # fmt: skip
    fields.done()
    reply = await call(c.services.storage.ListJobs, request)
    body = {
        "jobs": [job_json(c, j) for j in reply.jobs], "total": reply.total,
        "pages": math.ceil(reply.total / request.limit), "limit": request.limit, "current_page": request.page,
    }  # fmt: skip
    return ApiResponse(200, body)


async def download(c: Call) -> ApiResponse:
    token = c.params["file"].removesuffix(".csv")
    chunks = await read_stream(c.services.storage.ReadExport, pb.ReadExportRequest(token=token))
    return ApiResponse(200, b"".join(chunk.chunk for chunk in chunks), content_type=CSV)


def routes() -> RouteTable:
    table = RouteTable()
    table.add_device("GET", "/values/export.csv", export_values, Access.DEVICE)
    table.add("GET", "/v2/jobs", list_jobs, Access.MASTER)
    table.add("GET", "/v2/jobs/{job}", view_job, Access.DEVICE)
    # The random token in the URL is the capability, as with M2X's signed export URLs.
    table.add("GET", "/v2/exports/{file}", download, Access.PUBLIC)
    return table
