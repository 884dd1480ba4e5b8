"""What the owner reads on the phone: the batch report (short, plain text) and the alerts."""

from __future__ import annotations

from media_assets.reporting import KEPT_TITLE, RunReport
from media_assets.settings import GB
from media_assets.telegram.client import TEXT_LIMIT, Document

#: How many duplicates/quarantined files the shortened report lists before "and N more".
SHORT_LIST = 5


def human_bytes(count: int) -> str:
    """In decimal units, like every size the pipeline shows (1 GB = 10^9 bytes)."""
    for unit, size in (("GB", GB), ("MB", GB // 10**3), ("KB", GB // 10**6)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def human_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def deadline_text(seconds: float) -> str:
    """A deadline as people say it: "90 seconds", "10 minutes", "2 minutes 30 seconds" (never "1 minutes")."""
    total = max(1, round(seconds))
    minutes, rest = divmod(total, 60)

    def unit(n: int, name: str) -> str:
        return f"{n} {name}" if n == 1 else f"{n} {name}s"

    if rest == 0:
        return unit(minutes, "minute")
    if total < 120:
        return unit(total, "second")
    return f"{unit(minutes, 'minute')} {unit(rest, 'second')}"


def _listed(title: str, lines: list[str], limit: int | None) -> list[str]:
    if not lines:
        return []
    shown = lines if limit is None else lines[:limit]
    more = len(lines) - len(shown)
    return ["", title, *shown, *([f"… and {more} more"] if more else [])]


def report_text(report: RunReport, *, run_url: str | None = None, limit: int | None = None) -> str:
    """The report as a phone-sized message; `limit` caps the listed files."""
    head = "✅" if report.success else "❌"
    status = "succeeded" if report.success else "FAILED"
    lines = [
        f"{head} Batch {report.batch_id} {status} in {human_duration(report.duration_seconds)}",
        f"Phases: {report.phases_succeeded}/{report.phases_total} · Files: {report.files_processed}",
        f"Duplicates: {len(report.duplicates)} · Quarantined: {len(report.quarantined)}"
        f" · Saved: {human_bytes(report.bytes_saved)}",
    ]
    if report.already_in_icloud:
        lines.append(f"Already in iCloud: {report.already_in_icloud} (not uploaded back)")
    if report.error:
        lines.append(f"Error: {report.error}")
    lines += ["", "Phases:"]
    lines += [f"• {p['phase']}: {p['status']}, {p['files']} files, {p['seconds']:.1f} s" for p in report.phases]
    lines += _listed("Quarantined:", [f"• {q.source_path}: {q.error}" for q in report.quarantined], limit)
    lines += _listed("Duplicates:", [f"• {d.source_path} = {d.keeper_path} ({d.kind})"
                                     for d in report.duplicates], limit)
    lines += _listed(f"{KEPT_TITLE}:", [f"• {k['original_name']}: {k['reason']}" for k in report.kept_in_icloud],
                     limit)
    if run_url:
        lines += ["", f"Run: {run_url}"]
    return "\n".join(lines)


def report_messages(report: RunReport, *, run_url: str | None = None) -> tuple[str, Document | None]:
    """The whole report as one message if it fits; else a shortened one plus the long form as a document."""
    text = report_text(report, run_url=run_url)
    if len(text) <= TEXT_LIMIT:
        return text, None
    short = report_text(report, run_url=run_url, limit=SHORT_LIST) + "\n\nThe full report is attached."
    return short, Document(filename=f"report-{report.batch_id}.md", content=report.to_markdown(),
                           caption=f"Full report of batch {report.batch_id}")


def run_failure_text(*, job_name: str, partition: str | None, cause: str, run_url: str | None) -> str:
    """Alert for a failed run: what, where it failed and why in one line, and where to look."""
    first_line = (cause.strip().splitlines() or ["unknown cause"])[0]
    if len(first_line) > 300:
        first_line = first_line[:299] + "…"
    what = f"batch {partition}" if partition else f"job {job_name}"
    lines = [f"❌ Run failed: {what} ({job_name})", f"Failed at {first_line}"]
    if run_url:
        lines.append(f"Run: {run_url}")
    return "\n".join(lines)


def free_space_text(*, folder: str, free_bytes: int, threshold_gb: int) -> str:
    return (f"⚠️ Low free space: {human_bytes(free_bytes)} left on {folder} (alert below {threshold_gb} GB). "
            "New batches may fail until space is freed.")
