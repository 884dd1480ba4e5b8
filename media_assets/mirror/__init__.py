"""The Supabase mirror: the only package that talks to Supabase. The local catalog stays the source of truth;
changed rows are queued in its outbox by triggers and sent in chunks of upserts and deletes."""

from media_assets.mirror.config import MirrorConfig
from media_assets.mirror.outbox import consecutive_failures, has_pending_changes
from media_assets.mirror.remote import MirrorError, MirrorSchemaError, SupabaseRemote
from media_assets.mirror.sync import SyncReport, run_cycle, sync_once

__all__ = ["MirrorConfig", "MirrorError", "MirrorSchemaError", "SupabaseRemote", "SyncReport",
           "consecutive_failures", "has_pending_changes", "run_cycle", "sync_once"]
