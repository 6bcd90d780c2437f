-- Accounts and API keys. Entities are versioned rows: the newest version wins and
-- is_deleted = 1 hides the entity (ReplacingMergeTree(version, is_deleted)); the service
-- reads them once at start (FINAL) and then answers from its write-through cache.

CREATE TABLE IF NOT EXISTS accounts
(
    id String,
    name String,
    active UInt8,
    created_ms Int64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY id;

CREATE TABLE IF NOT EXISTS api_keys
(
    key String,
    account_id String,
    name String,
    kind LowCardinality(String),
    is_primary UInt8,
    device_id String,
    stream String,
    distribution_id String,
    collection_id String,
    permissions Array(LowCardinality(String)),
    expires_at_ms Int64,
    origins Array(String),
    device_access LowCardinality(String),
    created_ms Int64,
    updated_ms Int64,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY key;
