-- Triggers are versioned entity rows (newest version wins, is_deleted hides): the service
-- loads them once at start and answers reads from its write-through cache.
CREATE TABLE IF NOT EXISTS triggers
(
    id String,
    account_id String,
    device_id String,
    distribution_id String,
    name String,
    conditions_json String,
    frequency LowCardinality(String),
    interval Int32,
    timeframe Int32,
    callback_url String,
    status LowCardinality(String),
    send_location UInt8,
    notify_on_reset UInt8,
    custom_data Nullable(String),
    created_ms Int64,
    updated_ms Int64,
    since_version UInt64,
    revision UInt64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY id;

-- What the evaluator must not lose, written in one INSERT per evaluated batch so that a
-- crash keeps all of it or none: the feed cursor (kind 'cursor'), each trigger's state
-- (kind 'state', key = trigger id) and notifications not yet delivered (kind 'outbox', key =
-- event id; a delivered one is written again with is_deleted = 1).
CREATE TABLE IF NOT EXISTS engine_state
(
    kind LowCardinality(String),
    key String,
    body String,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (kind, key);

-- Every delivery attempt with its payload; the API shows an owner's 100 newest. Entries expire
-- after 30 days so that busy triggers cannot grow the table without bound.
CREATE TABLE IF NOT EXISTS trigger_log
(
    account_id String,
    device_id String,
    distribution_id String,
    trigger_id String,
    at DateTime64(3, 'UTC'),
    seq UInt64,
    payload String CODEC(ZSTD(1)),
    response_code UInt16
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (account_id, device_id, distribution_id, seq)
TTL toDateTime(at) + INTERVAL 30 DAY;
