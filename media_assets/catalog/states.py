"""The states a file moves through, and which moves are allowed. Every move is one transaction."""

from __future__ import annotations

from enum import Enum


class FileState(str, Enum):
    DISCOVERED = "discovered"
    DOWNLOADED = "downloaded"
    DUPLICATE = "duplicate"
    UNIQUE = "unique"
    COMPRESSED = "compressed"
    STAGED = "staged"
    UPLOADED = "uploaded"
    SORTED = "sorted"
    VERIFIED = "verified"
    QUARANTINED = "quarantined"
    #: A quarantine closed because the file was offered again (its source had been unreachable, revision 0015).
    SUPERSEDED = "superseded"


ALLOWED_MOVES: dict[FileState, frozenset[FileState]] = {
    FileState.DISCOVERED: frozenset({FileState.DOWNLOADED, FileState.QUARANTINED}),
    FileState.DOWNLOADED: frozenset({FileState.UNIQUE, FileState.DUPLICATE, FileState.QUARANTINED}),
    FileState.UNIQUE: frozenset({FileState.COMPRESSED, FileState.QUARANTINED}),
    FileState.COMPRESSED: frozenset({FileState.STAGED, FileState.QUARANTINED}),
    FileState.STAGED: frozenset({FileState.UPLOADED}),
    FileState.UPLOADED: frozenset({FileState.SORTED}),
    FileState.SORTED: frozenset({FileState.VERIFIED}),
    FileState.VERIFIED: frozenset(),
    FileState.DUPLICATE: frozenset(),
    FileState.QUARANTINED: frozenset({FileState.SUPERSEDED}),
    FileState.SUPERSEDED: frozenset(),
}

#: States in which a file of a finished batch is accounted for.
FINAL_STATES = frozenset({FileState.VERIFIED, FileState.DUPLICATE, FileState.QUARANTINED, FileState.SUPERSEDED})


class IllegalTransition(RuntimeError):
    """A phase tried a move the state machine forbids, or the file was no longer where it expected."""


def check_move(current: FileState, target: FileState) -> None:
    if target not in ALLOWED_MOVES[current]:
        raise IllegalTransition(f"a file cannot move from {current.value} to {target.value}")
