-- media-pipeline mirror, third step: a remote that converges and that an app can use. Safe to run again.
--  * The columns of catalog revisions 0006 (bounded batches: backlog, pruned files), 0008 (capture date tag,
--    time zone) and 0010 (why a batch failed).
--  * mirror_stamp: the local change number of each row's content; mirror_upsert keeps the newer of two writes.
--  * media_files.phash_hex: the 64-bit pHash as 16 hex digits (JavaScript numbers lose precision above 2^53).
--  * Foreign keys for the relations, so PostgREST can embed (`media_files?select=*,uploads(*)`). NOT VALID: rows
--    already present are not checked; ON DELETE CASCADE because the mirror deletes table by table, parents first.
--  * library_overview: one read-only row per batch (security_invoker: row level security of the tables applies).
--  * mirror_* functions, called by the pipeline with the service_role key through /rest/v1/rpc/: conditional
--    upserts, deletes sent in the body that answer which rows are still there, and checksums per key range for
--    the reconciliation. No one else may execute them.

ALTER TABLE public.batches         ADD COLUMN IF NOT EXISTS mirror_stamp bigint NOT NULL DEFAULT 0;
ALTER TABLE public.media_files     ADD COLUMN IF NOT EXISTS mirror_stamp bigint NOT NULL DEFAULT 0;
ALTER TABLE public.duplicate_files ADD COLUMN IF NOT EXISTS mirror_stamp bigint NOT NULL DEFAULT 0;
ALTER TABLE public.phase_runs      ADD COLUMN IF NOT EXISTS mirror_stamp bigint NOT NULL DEFAULT 0;
ALTER TABLE public.uploads         ADD COLUMN IF NOT EXISTS mirror_stamp bigint NOT NULL DEFAULT 0;

ALTER TABLE public.batches ADD COLUMN IF NOT EXISTS backlog boolean;
ALTER TABLE public.batches ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE public.media_files
    ADD COLUMN IF NOT EXISTS original_pruned_at       timestamptz,
    ADD COLUMN IF NOT EXISTS output_pruned_at         timestamptz,
    ADD COLUMN IF NOT EXISTS capture_date_tag         text,
    ADD COLUMN IF NOT EXISTS capture_time_zone        text,
    ADD COLUMN IF NOT EXISTS capture_time_zone_source text;

ALTER TABLE public.media_files
    ADD COLUMN IF NOT EXISTS phash_hex text GENERATED ALWAYS AS (lpad(to_hex(phash), 16, '0')) STORED;

DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN SELECT * FROM (VALUES
        ('media_files', 'media_files_batch_id_fkey', 'batch_id', 'batches'),
        ('duplicate_files', 'duplicate_files_file_id_fkey', 'file_id', 'media_files'),
        ('duplicate_files', 'duplicate_files_keeper_id_fkey', 'keeper_id', 'media_files'),
        ('duplicate_files', 'duplicate_files_batch_id_fkey', 'batch_id', 'batches'),
        ('phase_runs', 'phase_runs_batch_id_fkey', 'batch_id', 'batches'),
        ('uploads', 'uploads_file_id_fkey', 'file_id', 'media_files')) AS t(child, name, col, parent)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_constraint
                       WHERE conname = fk.name AND conrelid = format('public.%I', fk.child)::regclass) THEN
            EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I FOREIGN KEY (%I) REFERENCES public.%I (id)'
                           ' ON DELETE CASCADE NOT VALID', fk.child, fk.name, fk.col, fk.parent);
        END IF;
    END LOOP;
END $$;
CREATE INDEX IF NOT EXISTS duplicate_files_keeper ON public.duplicate_files (keeper_id);
CREATE INDEX IF NOT EXISTS phase_runs_batch ON public.phase_runs (batch_id);
CREATE INDEX IF NOT EXISTS uploads_file ON public.uploads (file_id);

CREATE OR REPLACE VIEW public.library_overview WITH (security_invoker = true) AS
SELECT b.id AS batch_id, b.status, b.created_at, b.finished_at,
       count(f.id) AS files,
       count(f.id) FILTER (WHERE f.state = 'verified') AS verified,
       count(f.id) FILTER (WHERE f.state = 'duplicate') AS duplicates,
       count(f.id) FILTER (WHERE f.state = 'quarantined') AS quarantined,
       count(f.id) FILTER (WHERE f.state NOT IN ('verified', 'duplicate', 'quarantined')) AS in_progress,
       coalesce(sum(f.size_bytes), 0) AS original_bytes,
       coalesce(sum(f.output_size) FILTER (WHERE f.state = 'verified'), 0) AS kept_bytes,
       min(f.captured_at) AS first_captured_at,
       max(f.captured_at) AS last_captured_at
FROM public.batches b
LEFT JOIN public.media_files f ON f.batch_id = b.id
GROUP BY b.id;
REVOKE ALL ON public.library_overview FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.library_overview TO authenticated, service_role;

-- The mirrored table named by the pipeline; anything else is refused (the functions build SQL from it).
CREATE OR REPLACE FUNCTION public.mirror_table(p_table text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = public AS $$
BEGIN
    IF p_table NOT IN ('batches', 'media_files', 'duplicate_files', 'phase_runs', 'uploads') THEN
        RAISE EXCEPTION 'not a mirrored table: %', p_table USING ERRCODE = '42P01';
    END IF;
    RETURN format('public.%I', p_table)::regclass;
END $$;

-- SQL for the key range (bucket) of a row: `id / size` for numeric keys, the first byte of md5(id) for text keys.
-- The pipeline computes the same expression on its catalog.
CREATE OR REPLACE FUNCTION public.mirror_bucket_sql(p_target regclass, p_bucket_size bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = public AS $$
    SELECT CASE WHEN a.atttypid = 'text'::regtype THEN 'get_byte(decode(md5(id), ''hex''), 0)::bigint'
                ELSE format('(id / %s)::bigint', p_bucket_size) END
    FROM pg_attribute a WHERE a.attrelid = p_target AND a.attname = 'id'
$$;

-- SQL for one row's content hash over the mirrored columns, in the order the pipeline names them.
CREATE OR REPLACE FUNCTION public.mirror_row_hash_sql(p_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('md5(jsonb_build_array(%s)::text)', string_agg(format('%I', c), ', ' ORDER BY n))
    FROM unnest(p_columns) WITH ORDINALITY AS u(c, n)
$$;

-- Insert or merge rows on their key; an existing row is replaced only by a write with the same or a newer
-- mirror_stamp (p_force: always, for the reconciliation, which runs alone). Returns the rows written.
CREATE OR REPLACE FUNCTION public.mirror_upsert(p_table text, p_columns text[], p_rows jsonb,
                                                p_force boolean DEFAULT false) RETURNS integer
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    target regclass := public.mirror_table(p_table);
    cols text[] := array_append(p_columns, 'mirror_stamp');
    column_list text := (SELECT string_agg(format('%I', c), ', ') FROM unnest(cols) c);
    updates text := (SELECT string_agg(format('%I = EXCLUDED.%I', c, c), ', ') FROM unnest(cols) c
                     WHERE c <> 'id');
    written integer;
BEGIN
    EXECUTE format('INSERT INTO %s AS t (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1)'
                   ' ON CONFLICT (id) DO UPDATE SET %s %s', target, column_list, column_list, target, updates,
                   CASE WHEN p_force THEN '' ELSE 'WHERE t.mirror_stamp <= EXCLUDED.mirror_stamp' END)
        USING p_rows;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;

-- Delete rows by key (sent in the body: no URL length limit); answers the keys that are still there.
CREATE OR REPLACE FUNCTION public.mirror_delete(p_table text, p_keys text[]) RETURNS text[]
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    target regclass := public.mirror_table(p_table);
    key_type text := (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                      WHERE attrelid = target AND attname = 'id');
    remaining text[];
BEGIN
    EXECUTE format('DELETE FROM %s WHERE id = ANY($1::%s[])', target, key_type) USING p_keys;
    EXECUTE format('SELECT coalesce(array_agg(id::text), ''{}'') FROM %s WHERE id = ANY($1::%s[])',
                   target, key_type) INTO remaining USING p_keys;
    RETURN remaining;
END $$;

-- {bucket: [rows, md5 of the rows' hashes in key order]} for the whole table: one answer, however many rows.
CREATE OR REPLACE FUNCTION public.mirror_checksums(p_table text, p_columns text[], p_bucket_size bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = public SET timezone = 'UTC' SET extra_float_digits = 1 AS $$
DECLARE
    target regclass := public.mirror_table(p_table);
    result jsonb;
BEGIN
    EXECUTE format('SELECT coalesce(jsonb_object_agg(bucket, jsonb_build_array(n, checksum)), ''{}'') FROM ('
                   'SELECT %s AS bucket, count(*) AS n, md5(string_agg(%s, '''' ORDER BY id)) AS checksum'
                   ' FROM %s GROUP BY 1) b', public.mirror_bucket_sql(target, p_bucket_size),
                   public.mirror_row_hash_sql(p_columns), target) INTO result;
    RETURN result;
END $$;

-- {key: row hash} of the rows in the given buckets: what the reconciliation compares where a checksum differs.
CREATE OR REPLACE FUNCTION public.mirror_row_hashes(p_table text, p_columns text[], p_bucket_size bigint,
                                                    p_buckets bigint[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = public SET timezone = 'UTC' SET extra_float_digits = 1 AS $$
DECLARE
    target regclass := public.mirror_table(p_table);
    result jsonb;
BEGIN
    EXECUTE format('SELECT coalesce(jsonb_object_agg(id::text, %s), ''{}'') FROM %s WHERE %s = ANY($1)',
                   public.mirror_row_hash_sql(p_columns), target,
                   public.mirror_bucket_sql(target, p_bucket_size)) INTO result USING p_buckets;
    RETURN result;
END $$;

REVOKE ALL ON FUNCTION public.mirror_table(text), public.mirror_bucket_sql(regclass, bigint),
    public.mirror_row_hash_sql(text[]), public.mirror_upsert(text, text[], jsonb, boolean),
    public.mirror_delete(text, text[]), public.mirror_checksums(text, text[], bigint),
    public.mirror_row_hashes(text, text[], bigint, bigint[])
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.mirror_table(text), public.mirror_bucket_sql(regclass, bigint),
    public.mirror_row_hash_sql(text[]), public.mirror_upsert(text, text[], jsonb, boolean),
    public.mirror_delete(text, text[]), public.mirror_checksums(text, text[], bigint),
    public.mirror_row_hashes(text, text[], bigint, bigint[])
    TO service_role;

NOTIFY pgrst, 'reload schema';
