-- media-pipeline mirror, fourth step: the sidecars (catalog revisions 0008 and 0012: the .AAE, .xmp and Takeout
-- .json files that travel with a photo, where they are kept and their SHA-256), mirrored like the other tables.
-- Safe to run again.

CREATE TABLE IF NOT EXISTS public.sidecars (
    id             bigint PRIMARY KEY,
    file_id        bigint,
    name           text,
    original_path  text,
    sorted_path    text,
    content_hash   text,
    mirror_stamp   bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sidecars_file ON public.sidecars (file_id);
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conname = 'sidecars_file_id_fkey' AND conrelid = 'public.sidecars'::regclass) THEN
        ALTER TABLE public.sidecars ADD CONSTRAINT sidecars_file_id_fkey FOREIGN KEY (file_id)
            REFERENCES public.media_files (id) ON DELETE CASCADE NOT VALID;
    END IF;
END $$;
ALTER TABLE public.sidecars ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sidecars TO service_role;

-- The mirrored tables named by the pipeline, sidecars now among them; anything else is refused.
CREATE OR REPLACE FUNCTION public.mirror_table(p_table text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = public AS $$
BEGIN
    IF p_table NOT IN ('batches', 'media_files', 'duplicate_files', 'phase_runs', 'uploads', 'sidecars') THEN
        RAISE EXCEPTION 'not a mirrored table: %', p_table USING ERRCODE = '42P01';
    END IF;
    RETURN format('public.%I', p_table)::regclass;
END $$;

NOTIFY pgrst, 'reload schema';
