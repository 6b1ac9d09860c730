-- Grants narrowed to single devices (a JSON array of device ids; NULL: not narrowed so).
ALTER TABLE access_grants ADD COLUMN scope_devices TEXT;
