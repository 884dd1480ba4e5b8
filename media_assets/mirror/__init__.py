"""The Supabase mirror: the only package that talks to Supabase. The local catalog stays the source of truth;
changed rows are queued in its outbox by triggers and sent in chunks of upserts and deletes, and a daily
reconciliation compares every table with the remote and repairs what differs."""

from media_assets.catalog.mirror import consecutive_failures, has_pending_changes, mirror_status
from media_assets.mirror.config import MirrorConfig
from media_assets.mirror.remote import MirrorError, MirrorKeyError, MirrorSchemaError, SupabaseRemote
from media_assets.mirror.sync import SyncReport, run_cycle, sync_once

__all__ = ["MirrorConfig", "MirrorError", "MirrorKeyError", "MirrorSchemaError", "SupabaseRemote", "SyncReport",
           "consecutive_failures", "has_pending_changes", "mirror_status", "run_cycle", "sync_once"]
