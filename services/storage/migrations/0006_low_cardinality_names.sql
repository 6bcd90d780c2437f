-- Device ids and stream names as LowCardinality: a part holds few distinct ones, so they are
-- stored, sorted and merged as dictionary codes instead of strings. Measured on 12M values
-- in requests of 10 streams x 100 values: INSERT CPU -10%, INSERT plus merges -20%.
-- On a database with values already stored, this starts a background mutation that rewrites
-- the two columns; reads and writes go on meanwhile.

ALTER TABLE numeric_values
    MODIFY COLUMN device_id LowCardinality(String),
    MODIFY COLUMN stream LowCardinality(String);

ALTER TABLE text_values
    MODIFY COLUMN device_id LowCardinality(String),
    MODIFY COLUMN stream LowCardinality(String);

ALTER TABLE numeric_hourly
    MODIFY COLUMN device_id LowCardinality(String),
    MODIFY COLUMN stream LowCardinality(String);
