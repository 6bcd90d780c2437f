-- The first and last timestamp (ms) of each hour's values in numeric_hourly: a range that
-- cuts an hour whose values all lie inside it (e.g. `end` = now, or bounds at the stream's
-- first and last value) is then answered from numeric_hourly alone, without reading values.
-- The view is made again with the two columns and the table filled again from numeric_values
-- (migrations run before anything is written).

ALTER TABLE numeric_hourly
    ADD COLUMN IF NOT EXISTS first_ms SimpleAggregateFunction(min, Int64),
    ADD COLUMN IF NOT EXISTS last_ms SimpleAggregateFunction(max, Int64);

DROP TABLE IF EXISTS numeric_hourly_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS numeric_hourly_mv TO numeric_hourly AS
SELECT
    account_id,
    device_id,
    stream,
    toUnixTimestamp64Milli(ts) - positiveModulo(toUnixTimestamp64Milli(ts), 3600000) AS hour,
    count() AS count,
    sum(value) AS sum,
    min(value) AS min,
    max(value) AS max,
    stddevPopState(value) AS stddev,
    min(toUnixTimestamp64Milli(ts)) AS first_ms,
    max(toUnixTimestamp64Milli(ts)) AS last_ms
FROM numeric_values
GROUP BY account_id, device_id, stream, hour;

TRUNCATE TABLE numeric_hourly;

INSERT INTO numeric_hourly
    (account_id, device_id, stream, hour, count, sum, min, max, stddev, first_ms, last_ms)
SELECT
    account_id,
    device_id,
    stream,
    toUnixTimestamp64Milli(ts) - positiveModulo(toUnixTimestamp64Milli(ts), 3600000) AS hour,
    count(),
    sum(value),
    min(value),
    max(value),
    stddevPopState(value),
    min(toUnixTimestamp64Milli(ts)),
    max(toUnixTimestamp64Milli(ts))
FROM numeric_values
GROUP BY account_id, device_id, stream, hour;
