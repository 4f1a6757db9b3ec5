-- Who may write what (decision 0012): attributes a device sends are kept apart from the ones the
-- backend set, so a device can neither overwrite the backend's values nor make a person match a
-- filter the backend decides. Filters and templates read the backend's attributes only, plus the
-- device's for the names a workspace lists in `device_attributes`.

ALTER TABLE people ADD COLUMN device_attributes jsonb NOT NULL DEFAULT '{}';

-- Attribute names a workspace lets devices write for filters and templates to read (when the
-- backend has not set the same name). Empty: devices' attributes are stored and shown, never read.
ALTER TABLE workspaces ADD COLUMN device_attributes text[] NOT NULL DEFAULT '{}';

-- The attributes filters and templates see: the device's, for the names listed, under the
-- backend's (the backend's value always wins). With no names listed it is `attributes` as is,
-- so the common case costs nothing. Bodies use $n (see 0006 on why).
CREATE FUNCTION mailslot_readable_attributes_v1(attributes jsonb, device_attributes jsonb, names text[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN cardinality($3) = 0 OR $2 = '{}'::jsonb THEN $1
        ELSE coalesce((SELECT jsonb_object_agg(d.key, d.value)
                       FROM jsonb_each($2) AS d
                       WHERE d.key = ANY ($3)), '{}'::jsonb) || $1
    END
$$;
