-- Devices and streams are versioned entity rows (newest version wins, is_deleted hides):
-- the service loads them once at start and answers reads from its write-through cache.

CREATE TABLE IF NOT EXISTS devices
(
    account_id String,
    id String,
    name String,
    description String,
    visibility LowCardinality(String),
    status LowCardinality(String),
    serial String,
    tags Array(String),
    metadata_json String,
    base_device String,
    last_activity_ms Int64,
    created_ms Int64,
    updated_ms Int64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (account_id, id);

CREATE TABLE IF NOT EXISTS streams
(
    account_id String,
    device_id String,
    name String,
    display_name String,
    type LowCardinality(String),
    unit_label String,
    unit_symbol String,
    created_ms Int64,
    updated_ms Int64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (account_id, device_id, name);

-- Location history: one row per waypoint; the newest is the device's current location.
CREATE TABLE IF NOT EXISTS waypoints
(
    account_id String,
    device_id String,
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    name String,
    latitude Float64,
    longitude Float64,
    elevation Nullable(Float64),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (account_id, device_id, ts);

-- The per-device request log is best effort and short-lived.
CREATE TABLE IF NOT EXISTS request_log
(
    account_id String,
    device_id String,
    ts DateTime64(3, 'UTC'),
    status UInt16,
    method LowCardinality(String),
    path String
)
ENGINE = MergeTree
ORDER BY (account_id, device_id, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY;
