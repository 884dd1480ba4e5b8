"""iCloud Photos through pyicloud: login with a relayed 2FA code, paced and retried calls, incremental listing,
streamed downloads, and uploads verified later. Plain modules, free of Dagster; the resource wires them in."""
