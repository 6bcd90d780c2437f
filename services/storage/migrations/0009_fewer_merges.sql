-- Values are merged in wider steps (merge_selector_base 8, ClickHouse's default is 5): each
-- value is rewritten fewer times on its way into large parts, at the price of a few more
-- parts in between. Measured (12M values in 500k-row INSERTs, chDB): CPU of INSERTs plus
-- merges -12%, 8 parts left instead of 4; bench.ingest of 10M values: storage CPU -11%; the
-- last 100 values of a stream (bench.reads) ~1 ms slower with the extra parts.

ALTER TABLE numeric_values MODIFY SETTING merge_selector_base = 8;

ALTER TABLE text_values MODIFY SETTING merge_selector_base = 8;
