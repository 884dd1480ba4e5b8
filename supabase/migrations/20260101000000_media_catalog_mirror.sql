-- media-pipeline: the cloud copy of the local catalog (metadata only; the local PostgreSQL stays the source of truth).
-- Apply once per Supabase project: Dashboard -> SQL Editor -> paste this file -> Run, or `supabase db push`.
-- Safe to run again. The pipeline writes with the service_role (secret) key, which bypasses row level security;
-- RLS is on with no policies, so the anon and authenticated keys see nothing until you add a policy, e.g.
--   CREATE POLICY "family can read" ON public.media_files FOR SELECT TO authenticated USING (true);
-- No foreign keys and no CHECKs: the local catalog enforces them, and the mirror receives each table on its own.

CREATE TABLE IF NOT EXISTS public.batches (
    id           text PRIMARY KEY,
    created_at   timestamptz,
    status       text,
    scanned_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz
);

CREATE TABLE IF NOT EXISTS public.media_files (
    id                         bigint PRIMARY KEY,
    batch_id                   text,
    source                     text,
    source_id                  text,
    source_version             text,
    original_name              text,
    size_bytes                 bigint,
    content_hash               text,
    media_type                 text,
    media_format               text,
    width                      integer,
    height                     integer,
    captured_at                timestamp,
    capture_utc_offset_minutes integer,
    capture_date_source        text,
    state                      text,
    error                      text,
    original_path              text,
    output_path                text,
    output_size                bigint,
    output_hash                text,
    compression_decision       text,
    staged_path                text,
    sorted_path                text,
    created_at                 timestamptz,
    updated_at                 timestamptz
);
CREATE INDEX IF NOT EXISTS media_files_batch ON public.media_files (batch_id);
CREATE INDEX IF NOT EXISTS media_files_content_hash ON public.media_files (content_hash);

CREATE TABLE IF NOT EXISTS public.duplicate_files (
    id          bigint PRIMARY KEY,
    file_id     bigint,
    keeper_id   bigint,
    batch_id    text,
    kind        text,
    distance    integer,
    created_at  timestamptz
);

CREATE TABLE IF NOT EXISTS public.phase_runs (
    id              bigint PRIMARY KEY,
    batch_id        text,
    phase           text,
    dagster_run_id  text,
    started_at      timestamptz,
    finished_at     timestamptz,
    status          text,
    files_processed integer,
    files_failed    integer,
    bytes_in        bigint,
    bytes_out       bigint,
    details         jsonb,
    error           text
);

CREATE TABLE IF NOT EXISTS public.uploads (
    id           bigint PRIMARY KEY,
    file_id      bigint,
    destination  text,
    status       text,
    remote_id    text,
    checksum     text,
    detail       text,
    uploaded_at  timestamptz,
    verified_at  timestamptz
);

ALTER TABLE public.batches         ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.media_files     ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.duplicate_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.phase_runs      ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.uploads         ENABLE ROW LEVEL SECURITY;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON public.batches, public.media_files, public.duplicate_files, public.phase_runs, public.uploads
    TO service_role;
