-- Asynchronous jobs (values exports). A job is a versioned entity row; its CSV result is a
-- file under the service's data directory, named by the job's random result token.

CREATE TABLE IF NOT EXISTS jobs
(
    id String,
    account_id String,
    device_id String,
    state LowCardinality(String),
    error String,
    result_token String,
    rows Int64,
    streams Array(String),
    start_ms Int64,
    end_ms Int64,
    row_limit Int64,
    created_ms Int64,
    started_ms Int64,
    finished_ms Int64,
    updated_ms Int64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (account_id, id);
