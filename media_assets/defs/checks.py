"""What every asset check shares: a plain `CheckOutcome` (computed without Dagster) as Dagster's result."""

from dagster import AssetCheckResult, AssetCheckSeverity

from media_assets.operations import CheckOutcome


def check_result(outcome: CheckOutcome, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    return AssetCheckResult(passed=outcome.passed, severity=severity, description=outcome.description,
                            metadata=outcome.metadata)
