-- media-pipeline mirror, second step: the deduplication fingerprints (catalog revision 0002) and the compression
-- quality score (0004). Safe to run again. The binary detail signature (`similarity`) stays local: it is only
-- useful to the pipeline's own near-duplicate confirmation.
ALTER TABLE public.media_files
    ADD COLUMN IF NOT EXISTS phash              bigint,
    ADD COLUMN IF NOT EXISTS pair_key           text,
    ADD COLUMN IF NOT EXISTS content_identifier text,
    ADD COLUMN IF NOT EXISTS burst_id           text,
    ADD COLUMN IF NOT EXISTS quality_score      double precision;

NOTIFY pgrst, 'reload schema';
