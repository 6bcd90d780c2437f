-- Streams where a timestamp may have been written more than once (a write at or before the
-- stream's newest timestamp, or repeating one): only their reads need FINAL. A row is added
-- before such a write is acknowledged; rows of deleted streams are removed with the stream.

CREATE TABLE IF NOT EXISTS rewritten_streams
(
    account_id String,
    device_id String,
    stream String
)
ENGINE = ReplacingMergeTree
ORDER BY (account_id, device_id, stream);
