-- Exports may carry the device's location at each value's time (include_location, spec §8.5).

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS include_location UInt8 DEFAULT 0 AFTER row_limit;
