"""Temporal workflows of tempo: one PlayerWorkflow per agent session.

A player's workflow ID is ``claude-session-{ensemble}-{name}``, so the name *is*
the claim: Temporal keeps one running workflow per ID, which makes a name unique
in its ensemble without any check-then-act race, and a sender reaches a player
by name without a visibility query. Renaming starts the workflow under the new
ID (the atomic claim) and hands everything pending over from the old one.

Cues reach the session's process through a long-poll Update (``poll``) that
waits on state, never on a clock; the process acknowledges what it pushed in
its next poll, so a cue is dropped from ``pending`` only once the session has
it. A cue nobody collects for ``undelivered_timeout`` means the process is gone:
the workflow hands its undelivered cues to the conductor and ends. A watcher (the
dashboard) follows the conductor's ``history`` the same way, never by a timer: its
``watch`` Update is answered when an exchange is recorded after its cursor.

Scheduled cues are Temporal Schedules whose action is a ScheduledCueWorkflow: one
short run per fire that looks its targets up (an activity: visibility is not for
workflow code), signals each its cue, hands on what nobody takes, and ends.

Only the standard library and temporalio are imported here; ``tempo.py`` imports
it, never the reverse. The workflows run outside Temporal's sandbox (SANDBOXED):
the code keeps the rules the sandbox enforces (no clock, randomness or I/O but
``workflow``'s, no state at module level), and the sandbox's per-activation
payload context cost ~30% of a worker's CPU for a cue (py-spy), ~8% of its push
latency (paired runs) and a re-import of this module at every worker's start.
Annotations are real types, not strings: the payload converter resolves a
dataclass's hints on every signal, and strings make that 4x slower (a run that
must catch up on thousands of cues in one activation then trips the 2 s
deadlock detector on every retry, and never recovers).
"""

import asyncio
import contextlib
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

# ---------------------------------------------------------------------------
# Public contract: IDs, search attributes, messages
# External clients rely on these names; change them only with a migration.
# ---------------------------------------------------------------------------

# The task queue is configuration, not contract: tempo.py's DEFAULT_TASK_QUEUE or CLAUDE_TEMPO_TASK_QUEUE.
CONDUCTOR = "conductor"  # the conductor's name, reserved for it
UNDELIVERED_TIMEOUT = 180.0  # seconds a cue may wait uncollected before its player is dead
IDLE_TIMEOUT = 86400.0  # seconds without any contact from the session, nothing pending
# Seconds a worker has for one workflow task (Temporal's default is 10). Every session runs a
# worker; a stopped one (a laptop asleep) still holds the tasks its open polls took, and one that
# exits may lose a task its poll was taking (temporalio interrupts polls at shutdown): this is how
# long a cue to anyone, or a new player's start, waits before another session's worker runs it. It
# fits inside a serve's shutdown deadline (tempo.py's SHUTDOWN_DEADLINE), so a session that ends
# just after joining still ends its player.
TASK_TIMEOUT = 2.0
# s a player may wait at its screen (a permission, input) or leave cues unread while it works before
# the conductor hears of it, once per stall, as a blocker (CLAUDE_TEMPO_STALL_TIMEOUT)
STALL_TIMEOUT = 300.0
STALLS_TOLD_LIMIT = 50  # stalls remembered as told (a stall is told once)
PERMISSION_LIMIT = 50  # permission requests a player keeps (answered ones age out)
PERMIT_DECISIONS = ("allow", "deny")
HISTORY_LIMIT = 200  # exchanges a conductor keeps for the `history` query
SEEN_LIMIT = 1000  # recent cue ids remembered to drop duplicate deliveries
LATE_TIMER = 1.0  # s a deadline may fire late before the workflow suspects it was not running (an outage)
RECONNECT_GRACE = 10.0  # s a session gets to reach the server again after an outage (its retries back off to 5 s)
HOLD_GRACE = 10.0  # s past its poll's end before a session holding board tasks or files is gone (tempo.py: AWAY_GRACE)
RECEIPT_LIMIT = 500  # read receipts a player keeps for senders who ask
UNSEEN_LIMIT = 500  # cues its session has but its model has not seen yet, kept for a hand-over
CUES_PER_RUN = 500  # continue as new after this many cues, if the server has not asked earlier
POLL_BATCH_CUES = 100  # a poll answers with at most this many cues ...
POLL_BATCH_CHARS = 1_000_000  # ... and this much text: an update result must stay under 2 MB
# Patches (`workflow.patched`): the one list of them. Sessions of different tempo versions share one
# task queue, so any session's worker may replay any player's history, recorded by older code. The
# rule: any change to what a running workflow does (a command added, dropped or moved: a signal, a
# timer, an activity, a memo or search-attribute upsert, a continue-as-new) runs only where
# `workflow.patched(ID)` says so, with a new ID listed here; the old path stays for histories before it.
# tests/test_replay.py replays recorded histories (scripts/record_histories.py records today's).
UNREAD_CHARS_PATCH = "unread-chars"  # the memo says the unread cues' characters too (_Memo.publish_unread)
BOARD_LEFT_PATCH = "board-player-left"  # an ending player tells the board (its claims reopen: PlayerWorkflow.run)
LEFT_TOLD_PATCH = "conductor-told-player-left"  # ... and the conductor that it left, and why (PlayerWorkflow.run)
MEMO_ONCE_PATCH = "memo-once-per-task"  # the unread count reaches the memo once per workflow task (_Memo.publish_unread)
STALL_PATCH = "stall-noticed"  # a stalled player is told to the conductor (a timer histories before it lack: PlayerWorkflow.run)
# A player's end hands its cues on, tells the board and tells the conductor at once (PlayerWorkflow.run): one after
# another, each waited for its own workflow task; a session's serve has ~3 s to see its player end before it exits.
LEAVE_AT_ONCE_PATCH = "leave-at-once"

SANDBOXED = False  # see the module's docstring

ENSEMBLE = SearchAttributeKey.for_keyword("ClaudeTempoEnsemble")
PLAYER_ID = SearchAttributeKey.for_keyword("ClaudeTempoPlayerId")
HOST = SearchAttributeKey.for_keyword("ClaudeTempoHost")
REPO = SearchAttributeKey.for_keyword("ClaudeTempoRepo")
BRANCH = SearchAttributeKey.for_keyword("ClaudeTempoBranch")
ROLE = SearchAttributeKey.for_keyword("ClaudeTempoRole")
SEARCH_ATTRIBUTES = (ENSEMBLE, PLAYER_ID, HOST, REPO, BRANCH, ROLE)


# What `deliver` says when a cue is addressed to another ensemble than the player's.
NOT_HERE = "not in this ensemble"


def workflow_id(ensemble: str, name: str) -> str:
    """Return the workflow ID of the player `name` in `ensemble`."""
    return f"claude-session-{ensemble}-{name}"


@dataclass
class PlayerInfo:
    """What a player says about itself: shown by `ensemble` and `tempo status`."""

    ensemble: str
    name: str
    role: str = "player"  # "player" or "conductor"
    part: str = ""
    directory: str = ""
    repo: str = ""
    branch: str = ""
    host: str = ""
    pid: int = 0
    agent: str = "claude"
    started: str = ""  # ISO 8601, UTC
    unread: int = 0  # cues that have not reached the model yet (kept current by the workflow)
    unread_chars: int = 0  # ... and their characters: what they would add to the model's context
    delivery: str = ""  # the delivery paths live in the session: "channel hooks waiter", ...
    worktree: str = ""  # the linked git worktree it works in (tempo/<name> branch), if any
    waiting: str = ""  # what the session waits for, when it waits on someone: "permission Bash(rm -rf build)", "input"
    waiting_since: str = ""  # ISO 8601, UTC
    waiting_request: str = ""  # the permission request it waits on (its request_id), if any


@dataclass
class Cue:
    """One message to a player. `id` is unique; a cue is delivered once per id."""

    id: str
    sender: str
    text: str
    sent_at: str = ""  # ISO 8601, UTC, set by the sender
    kind: str = "cue"  # cue | command | report | joined | undelivered | notice | scheduled
    source: str = ""  # command source (discord, cli, ...) or report type
    recipient: str = ""  # for cues handed over from a dead player: whom they were for
    queued_at: str = ""  # set by the workflow when the cue arrives
    # The ensemble it is addressed to: IDs are ambiguous across ensembles (`shop` + `ops-bot` and
    # `shop-ops` + `bot` share one), so a player takes only cues for its own ensemble ("" = unsaid:
    # claude-tempo 0.3 and outside clients, taken as before).
    ensemble: str = ""


@dataclass
class Command:
    """The conductor's public `command` signal: `{text, source}`."""

    text: str
    source: str = "external"


@dataclass
class Exchange:
    """One line of the conductor's `history`: commands in, reports and cues out."""

    at: str
    direction: str  # "in" or "out"
    kind: str  # command | report | cue | joined | undelivered
    sender: str
    recipient: str
    text: str
    source: str = ""
    id: str = ""  # the cue's id, so a read receipt can find its line
    seen: str = ""  # "PATH at TIME" once the recipient's model has seen it
    request_id: str = ""  # kind permission (a player asks) or permit (the answer): the request it is about


@dataclass
class Receipt:
    """A cue reached its recipient's model: when, and by which path (channel, hook, waiter, listen, ...)."""

    id: str
    path: str
    at: str = ""
    sender: str = ""  # filled in by the recipient's workflow
    recipient: str = ""


@dataclass
class WaitSeen:
    """Wait (a little) for a cue's read receipt."""

    id: str
    wait: float = 0.5


@dataclass
class EndRequest:
    """Why a player ends; `moved_to` is the workflow ID that takes over (a rename)."""

    reason: str
    by: str = ""
    moved_to: str = ""
    away: bool = False  # set by the workflow's own deadlines: the session was only away, it may rejoin
    # The session's last read receipts, applied before anything is handed on: a session ending with its
    # client (`claude -p` exits right after the model's last answer) has time for one RPC, not two.
    seen: list[Receipt] = field(default_factory=list)


@dataclass
class PollInput:
    """The session's long poll: acknowledge what it pushed, then wait up to `wait` s."""

    ack: list[str] = field(default_factory=list)
    wait: float = 300.0
    seen: list[Receipt] = field(default_factory=list)  # read receipts gathered since the last poll
    # The board's reservations version the session has read (-1: it does not watch the board); a
    # newer one (the board's `board_changed` signal) ends the poll so the session reads them again.
    board: int = -1


@dataclass
class PollResult:
    """Cues not yet acknowledged, or why the player is ending."""

    cues: list[Cue] = field(default_factory=list)
    ended: str = ""
    moved_to: str = ""
    board: int = 0  # the board's reservations version this player was last told of


@dataclass
class Permission:
    """A permission request of a player's agent (Claude Code's dialog, a Copilot question), and its one answer."""

    id: str  # the request_id every answer names
    player: str
    tool: str  # Claude Code's tool name: Bash, Edit, mcp__server__tool, ...
    preview: str  # a short preview of what it would do: the command, the file
    asked_at: str = ""
    decision: str = ""  # "" while it waits; allow | deny | dialog (nobody answered in time: the agent's own dialog shows)
    reason: str = ""  # a deny's message, read by the model
    by: str = ""  # who decided: a player's name, "cli", "dashboard", "rule Bash(npm test:*)", ...
    decided_at: str = ""
    ensemble: str = ""  # the asker's: a conductor of another ensemble with the same workflow ID ignores it

    def rule(self) -> str:
        return f"{self.tool}({self.preview})" if self.preview else self.tool


@dataclass
class Permit:
    """The public answer to a permission request (the `permit` update and signal): `{request_id, decision, reason, by}`."""

    request_id: str
    decision: str  # allow | deny
    reason: str = ""
    by: str = "external"


@dataclass
class WaitPermission:
    """Wait up to `wait` s for a permission request's answer."""

    id: str
    wait: float = 60.0


@dataclass
class PlayerInput:
    """All of a player's state: the workflow input, carried across continue-as-new."""

    info: PlayerInfo
    pending: list[Cue] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    unseen: list[Cue] = field(default_factory=list)  # acknowledged by the session, not yet seen by its model
    receipts: list[Receipt] = field(default_factory=list)
    history: list[Exchange] = field(default_factory=list)
    undelivered_timeout: float = UNDELIVERED_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    cues_per_run: int = CUES_PER_RUN
    last_contact: str = ""
    received: int = 0  # cues received over the player's whole life
    previous_name: str = ""  # set on a rename, so the conductor hears "a is now b"
    continued: bool = False
    attributes: list[str] | None = None  # the search attributes its namespace has (None: all of tempo's)
    recorded: int = 0  # exchanges ever recorded in `history`: the cursor of `watch`
    away_for: float = 0.0  # set on a rejoin: seconds the session was away, so the conductor hears it is back
    holds: bool = False  # the board says it holds tasks or files: a session that stops polling is gone soon
    last_wait: float = 0.0  # how long the session's latest poll asked to be held
    permissions: list[Permission] = field(default_factory=list)  # its recent permission requests, answered or not
    stall_timeout: float = STALL_TIMEOUT
    stalls_told: list[str] = field(default_factory=list)  # the stalls the conductor has heard of (their keys)
    board_version: int = 0  # the board's reservations version, from its `board_changed` signal


@dataclass
class Departure:
    """How a player ended, read from its closed run: whether its session was only away, what was handed over."""

    reason: str
    away: bool = False
    last_contact: str = ""  # ISO 8601: the session's last poll
    ended_at: str = ""
    handed: list[Cue] = field(default_factory=list)  # each handed-over cue, `recipient` = who took it


@dataclass
class WatchInput:
    """A watcher's long poll on the conductor's history: what it has seen, how long to wait."""

    after: int = -1  # the `cursor` of the last answer; -1: everything now
    wait: float = 300.0


@dataclass
class WatchResult:
    """Exchanges recorded after the watcher's cursor (at most the whole `history`)."""

    exchanges: list[Exchange] = field(default_factory=list)
    cursor: int = 0


def search_attributes(info: PlayerInfo, names: list[str] | None = None) -> TypedSearchAttributes:
    """Return the search attributes that describe `info` (for start and upsert), limited to `names`.

    A namespace where tempo may not register its attributes has only some of them; setting an
    unregistered one fails the start or the workflow task, and the memo says everything anyway.
    """
    pairs = [
        SearchAttributePair(ENSEMBLE, info.ensemble),
        SearchAttributePair(PLAYER_ID, info.name),
        SearchAttributePair(HOST, info.host),
        SearchAttributePair(REPO, info.repo),
        SearchAttributePair(BRANCH, info.branch),
        SearchAttributePair(ROLE, info.role),
    ]
    return TypedSearchAttributes([p for p in pairs if names is None or p.key.name in names])


# ---------------------------------------------------------------------------
# PlayerWorkflow
# Signals change state, queries only read, updates change state and answer. All state a player keeps
# across continue-as-new is one PlayerInput; each helper below owns one concern of it (the cues on
# their way, read receipts, the conductor's history, liveness, permissions, stalls, the memo, what
# is handed on at the end) and shares that one object, and the workflow's handlers delegate to them.
# Helpers run inside the workflow: workflow.now(), never a clock; see "Patches" before changing one.
# ---------------------------------------------------------------------------


async def _cue_player(target: str, cue: Cue) -> bool:
    """Signal `cue` to another player (never to this one); False when that player is not running."""
    if target == workflow.info().workflow_id:
        return False
    return await signal_player(target, cue)


async def _cue_conductor(info: PlayerInfo, cue: Cue) -> bool:
    """Signal `cue` to the conductor of `info`'s ensemble; False when there is none (or this is it)."""
    return await _cue_player(workflow_id(info.ensemble, CONDUCTOR), cue)


async def _signal_quietly(target: str, signal: str, arg: object) -> None:
    """Signal a workflow that may be gone (a conductor, a board): then nobody needs to hear it."""
    with contextlib.suppress(Exception):
        await workflow.get_external_workflow_handle(target).signal(signal, arg)


async def _announce(s: PlayerInput) -> None:
    """Tell the conductor that this player joined (or took a new name, or is back)."""
    info = s.info
    if info.role == "conductor":
        return
    text = (
        f"{s.previous_name} is now known as {info.name}"
        if s.previous_name
        else f"{info.name} is back after {duration(s.away_for)}"
        if s.away_for
        else f"{info.name} joined ({info.host}:{info.directory})"
    )
    await _cue_conductor(info, Cue(id=f"joined-{workflow.info().workflow_id}-{workflow.info().run_id}", sender=info.name,
                                   text=text, sent_at=now(), kind="joined", ensemble=info.ensemble))


@dataclass
class _Inbox:
    """A player's cues on their way to its model: `pending` (its session has not acknowledged them),
    `unseen` (its session has them, its model has not seen them), and the ids taken (a second is dropped)."""

    s: PlayerInput
    ids: set[str] = field(init=False)  # the ids of `s.seen`, for lookups
    this_run: int = 0  # cues taken by this run (it continues as new after `s.cues_per_run`)

    def __post_init__(self) -> None:
        self.ids = set(self.s.seen)

    def addressed_here(self, cue: Cue) -> bool:
        return not cue.ensemble or cue.ensemble == self.s.info.ensemble

    def take(self, cue: Cue) -> bool:
        """Queue a new cue for the session; False for a duplicate or another ensemble's (dropped)."""
        if cue.id in self.ids:
            return False
        if not self.addressed_here(cue):  # a workflow's signal that reached another ensemble's player
            workflow.logger.warning("cue %s for ensemble %r dropped by %s", cue.id, cue.ensemble, workflow.info().workflow_id)
            return False
        self.remember(cue.id)
        cue.queued_at = now()
        self.s.pending.append(cue)
        self.s.received += 1
        self.this_run += 1
        return True

    def remember(self, cue_id: str) -> None:
        self.ids.add(cue_id)
        self.s.seen.append(cue_id)
        if len(self.s.seen) > SEEN_LIMIT:
            self.ids.discard(self.s.seen.pop(0))

    def acknowledge(self, ids: list[str], read: dict[str, Receipt]) -> bool:
        """The session has these cues: they wait for its model now, not for its process (unless `read`)."""
        if not ids:
            return False
        done = set(ids)
        self.s.unseen += [c for c in self.s.pending if c.id in done and c.id not in read]
        self.s.pending = [c for c in self.s.pending if c.id not in done]
        del self.s.unseen[:-UNSEEN_LIMIT]
        return True

    def batch(self) -> list[Cue]:
        """The oldest pending cues that fit in one poll result (at least one)."""
        cues, size = [], 0
        for cue in self.s.pending:
            size += len(cue.text) + len(cue.sender) + 200
            if cues and (len(cues) >= POLL_BATCH_CUES or size > POLL_BATCH_CHARS):
                break
            cues.append(cue)
        return cues

    def unread(self) -> int:
        return len(self.s.pending) + len(self.s.unseen)

    def unread_chars(self) -> int:
        return sum(len(c.text) for c in (*self.s.pending, *self.s.unseen))


@dataclass
class _History:
    """The conductor's `history`: commands and cues in, cues out, permissions and their answers."""

    s: PlayerInput

    def record(self, cue: Cue, direction: str) -> None:
        self.append(Exchange(
            at=now(),
            direction=direction,
            kind=cue.kind,
            sender=cue.sender,
            recipient=cue.recipient or (self.s.info.name if direction == "in" else ""),
            text=cue.text,
            source=cue.source,
            id=cue.id,
            request_id=cue.id if cue.kind == "permission" else "",
        ))

    def record_permit(self, request: Permission) -> None:
        said = f"{request.decision} {request.rule()} for {request.player}" + (f": {request.reason}" if request.reason else "")
        self.append(Exchange(at=request.decided_at or now(), direction="in", kind="permit", sender=request.by,
                             recipient=request.player, text=said, source=request.tool, id=f"permit-{request.id}",
                             request_id=request.id))

    def append(self, line: Exchange) -> None:
        self.s.history.append(line)
        del self.s.history[:-HISTORY_LIMIT]
        self.s.recorded += 1

    def note_seen(self, r: Receipt) -> None:
        for line in reversed(self.s.history):
            if line.id == r.id:
                line.seen = f"{r.path} at {r.at}"
                break

    def since(self, after: int) -> WatchResult:
        """The exchanges recorded after the cursor `after` (a cursor ahead of ours: from an earlier conductor, all)."""
        s = self.s
        fresh = s.recorded - after if 0 <= after <= s.recorded else len(s.history)
        return WatchResult(exchanges=s.history[len(s.history) - min(fresh, len(s.history)):], cursor=s.recorded)


@dataclass
class _Receipts:
    """Read receipts: which cues reached this player's model, when, and by which path."""

    s: PlayerInput
    history: _History  # a conductor notes its cues' receipts there
    by_id: dict[str, Receipt] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.s.receipts}

    def apply(self, receipts: list[Receipt]) -> list[Receipt]:
        """Record read receipts; return those a conductor should hear about (cues it sent)."""
        relay = []
        # One pass over what waits, whatever the number of receipts: a burst's receipts come by the
        # hundred, and a pass per receipt over a backlog of a thousand costs a workflow task ~10^6 steps.
        waiting: dict[str, Cue] = {}
        for c in (*self.s.unseen, *self.s.pending) if receipts else ():
            waiting.setdefault(c.id, c)
        done: set[str] = set()
        for r in receipts:
            if r.id in self.by_id:
                continue
            cue = waiting.get(r.id)
            if cue:
                r.sender, r.recipient = cue.sender, self.s.info.name
                done.add(r.id)
            r.at = r.at or now()
            self.by_id[r.id] = r
            self.s.receipts.append(r)
            if self.s.info.role == "conductor":
                self.history.note_seen(r)
            elif r.sender == CONDUCTOR:
                relay.append(r)
        if done:
            self.s.unseen = [c for c in self.s.unseen if c.id not in done]
            self.s.pending = [c for c in self.s.pending if c.id not in done]
        if len(self.s.receipts) > RECEIPT_LIMIT:
            for old in self.s.receipts[:-RECEIPT_LIMIT]:
                self.by_id.pop(old.id, None)
            del self.s.receipts[:-RECEIPT_LIMIT]
        return relay

    async def relay(self, receipts: list[Receipt]) -> None:
        """Tell the conductor its cues were seen (a conductor that is gone has no history to keep)."""
        for r in receipts:
            await _signal_quietly(workflow_id(self.s.info.ensemble, CONDUCTOR), "receipt", r)

    def read(self, ids: list[str]) -> list[Receipt]:
        """Receipts of these cues: seen (with path), unread (path ""), or absent (not here)."""
        waiting = {c.id for c in (*self.s.pending, *self.s.unseen)}
        return [self.by_id.get(i) or Receipt(id=i, path="") for i in ids if i in self.by_id or i in waiting]


@dataclass
class _Liveness:
    """Whether the session is there: its polls (a held poll is a live session, however long ago it began),
    its last contact, and the deadlines that end a player whose session is gone."""

    s: PlayerInput
    polls_waiting: int = 0
    poll_generation: int = 0  # a poll answers empty when a newer one began, or the run released it
    releasing: bool = False  # no new polls: the run is closing
    untimed: bool = False  # the run loop waits without a deadline (while a poll is held)
    grace_until: float = 0.0  # after an outage, the session may take until then to acknowledge
    last_wait: float = 0.0  # how long the session's latest poll asked to be held

    def poll_began(self, wait: float) -> int:
        """A poll came in: the session is alive now; return the poll's generation."""
        self.s.last_contact = now()
        self.last_wait = self.s.last_wait = wait
        self.poll_generation += 1
        self.polls_waiting += 1
        return self.poll_generation

    def poll_ended(self) -> bool:
        """A poll ended (`last_contact` stays its start: a poll ending proves nothing about the session);
        whether the run loop must wake: the idle deadline is back (woken only then: timers cost history)."""
        return not self.polls_waiting and self.untimed

    def release(self) -> None:
        """Answer every waiting poll, and refuse new ones."""
        self.releasing = True
        self.poll_generation += 1

    def acknowledged(self) -> None:
        self.grace_until = 0.0 if not self.s.pending else self.grace_until

    def next_deadline(self) -> float | None:
        """Seconds until the player should be judged dead: a stale cue, or silence."""
        s = self.s
        if s.pending:
            due = max(self.undelivered_since() + s.undelivered_timeout, self.grace_until)
        elif self.polls_waiting:
            return None  # the session is holding a poll: alive until that poll ends
        else:
            due = min(parse(s.last_contact) + s.idle_timeout, self.hold_due())
        return max(0.001, due - parse(now()))

    def hold_due(self) -> float:
        """When a session that holds board tasks or files, and polls no more, counts as gone (inf: never)."""
        s = self.s
        if not s.holds or not s.last_wait or self.polls_waiting:
            return float("inf")
        return parse(s.last_contact) + s.last_wait + min(HOLD_GRACE, s.last_wait)

    def due_end(self) -> EndRequest | None:
        """A deadline passed: why the session is gone, or None (not yet, or given time after an outage)."""
        s = self.s
        t = parse(now())
        if s.pending and t >= self.grace_until and t - self.undelivered_since() >= s.undelivered_timeout:
            if t - (self.undelivered_since() + s.undelivered_timeout) > LATE_TIMER and not self.grace_until:
                # The timer fired late: the server (or every worker) was down, and the session could not
                # acknowledge meanwhile. Give it the time to reach the server again before judging it gone.
                self.grace_until = t + RECONNECT_GRACE
                return None
            return EndRequest(reason=f"undelivered for {s.undelivered_timeout:g}s: the session is gone", away=True)
        if not s.pending and not self.polls_waiting and t - parse(s.last_contact) >= s.idle_timeout:
            return EndRequest(reason=f"no contact for {s.idle_timeout:g}s", away=True)
        if not s.pending and t >= self.hold_due():
            return EndRequest(reason=f"no poll for {duration(t - parse(s.last_contact))} while holding tasks or files "
                                     "of the board: they went back to the ensemble", away=True)
        return None

    def undelivered_since(self) -> float:
        """When the oldest pending cue began to wait for the session: its arrival, or the session's
        latest poll if that came later (a poll answered with it; its ack comes with the next one)."""
        return max(parse(self.s.pending[0].queued_at), parse(self.s.last_contact))

    def presence(self) -> dict:
        return {
            "last_contact": self.s.last_contact,
            "polling": self.polls_waiting > 0,
            "wait": self.last_wait,
            "pending": len(self.s.pending),
            "oldest": self.s.pending[0].queued_at if self.s.pending else "",
        }


@dataclass
class _Permissions:
    """The agent's permission dialog, relayed: asked once, answered once (first answer wins), waited on
    by the session's hook; and what the session waits for, kept in the memo's `waiting`."""

    s: PlayerInput
    waiting_on: str = ""  # what the session last said it waits for ("input"), besides permissions

    def find(self, request_id: str) -> Permission | None:
        return next((p for p in self.s.permissions if p.id == request_id), None)

    def add(self, request: Permission) -> None:
        """Keep a new request of this player (answered already when a standing rule decided it)."""
        request.player, request.ensemble, request.asked_at = self.s.info.name, self.s.info.ensemble, now()
        request.decided_at = request.asked_at if request.decision else ""
        self.s.permissions.append(request)
        del self.s.permissions[:-PERMISSION_LIMIT]
        self.refresh_waiting()

    def asking(self, request: Permission) -> Cue:
        """The cue that asks the conductor to answer `request`."""
        text = (f"{request.player} asks permission for {request.rule()} and waits (request_id {request.id}). "
                f"Answer with the `permit` tool: request_id {request.id!r}, decision allow or deny "
                "(a deny's reason reaches its model).")
        return Cue(id=request.id, sender=request.player, text=text, sent_at=request.asked_at, kind="permission",
                   source=request.tool, ensemble=request.ensemble)

    def check(self, answer: Permit) -> None:
        """Refuse an answer that cannot decide: an unknown decision or request, or one answered already."""
        request = self.find(answer.request_id)
        if answer.decision not in (*PERMIT_DECISIONS, "dialog"):
            raise ApplicationError(f"decision must be allow or deny, not {answer.decision!r}", non_retryable=True)
        if request is None:
            raise ApplicationError(f"{self.s.info.name} has no permission request {answer.request_id!r}", non_retryable=True)
        if request.decision:
            said = "nobody answered in time: its own dialog asks at its screen" if request.decision == "dialog" else (
                f"{request.decision} by {request.by} at {request.decided_at}")
            raise ApplicationError(f"request {request.id} is already answered ({said}); this answer changes nothing",
                                   non_retryable=True)

    def decide(self, answer: Permit) -> Permission:
        request = self.find(answer.request_id)
        request.decision, request.reason, request.by, request.decided_at = answer.decision, answer.reason, answer.by or "external", now()
        self.refresh_waiting()
        return request

    def waiting_for(self, what: str) -> None:
        self.waiting_on = what
        self.refresh_waiting()

    def refresh_waiting(self) -> None:
        """Keep the memo's `waiting` current: the oldest unanswered request, else what the session said."""
        info = self.s.info
        ask = next((p for p in self.s.permissions if not p.decision), None)
        what = f"permission {ask.rule()}" if ask else self.waiting_on
        if what != info.waiting:
            info.waiting = what
            info.waiting_since = (ask.asked_at if ask else now()) if what else ""
            info.waiting_request = ask.id if ask else ""
            workflow.upsert_memo({"info": asdict(info)})


@dataclass
class _Memo:
    """The memo's unread count, which `ensemble` and `tempo status` show, kept current."""

    s: PlayerInput
    inbox: _Inbox
    stale: bool = False  # the unread count changed since the memo last said it

    def publish_unread(self) -> None:
        info = self.s.info
        chars = info.unread_chars
        if workflow.patched(UNREAD_CHARS_PATCH):  # histories recorded before it upsert on a count change only
            chars = self.inbox.unread_chars()
        if info.unread != self.inbox.unread() or info.unread_chars != chars:
            info.unread, info.unread_chars = self.inbox.unread(), chars
            if workflow.patched(MEMO_ONCE_PATCH):
                self.stale = True  # `keep` says it once this workflow task has taken in all it got
            else:
                workflow.upsert_memo({"info": asdict(info)})

    async def keep(self) -> None:
        """Upsert the memo at most once per workflow task: one upsert per cue was half of a burst's
        history (a thousand cues, a thousand memo events), and a long history is a slow replay."""
        while True:
            await workflow.wait_condition(lambda: self.stale)
            self.stale = False
            workflow.upsert_memo({"info": asdict(self.s.info)})


@dataclass
class _Stalls:
    """A player nobody watches stalls silently: at a dialog, waiting for input, or busy while cues to it
    stay unread. Past `stall_timeout` the conductor gets one blocker report per stall (its key), never
    a reminder: one timer at a time, restarted only when the stall changes."""

    s: PlayerInput

    def stall(self) -> tuple[str, str]:
        """(key, since) of what this player is stalled on now, or ("", "")."""
        info = self.s.info
        if info.waiting:
            return f"waiting {info.waiting_since} {info.waiting}", info.waiting_since
        if self.s.unseen:  # its session has them, its model has not read them: it is busy with something else
            return f"unread {self.s.unseen[0].id}", self.s.unseen[0].queued_at
        return "", ""

    async def watch(self) -> None:
        def untold() -> bool:
            key = self.stall()[0]
            return bool(key) and key not in self.s.stalls_told

        while True:
            key, since = self.stall()
            if not untold():
                await workflow.wait_condition(untold)
                continue
            left = parse(since) + self.s.stall_timeout - parse(now()) if since else 0.0
            if left > 0:  # one timer per stall period, never cancelled: a stall's key changes with every cue a
                await asyncio.sleep(left)  # busy player leaves unread, and a timer per change is history per cue
                continue
            self.s.stalls_told.append(key)
            del self.s.stalls_told[:-STALLS_TOLD_LIMIT]
            await self.tell(key, since)

    async def tell(self, key: str, since: str) -> None:
        """One blocker report to the conductor: what this player is stalled on, since when, what would help."""
        info, waited = self.s.info, duration(parse(now()) - parse(since))
        if key.startswith("waiting ") and info.waiting_request:
            text = (f"{info.name} has waited {waited} for permission {info.waiting.removeprefix('permission ')} "
                    f"(request_id {info.waiting_request}): answer it with `permit`, or it stays stuck")
        elif key.startswith("waiting "):
            text = (f"{info.name} has waited {waited} for {info.waiting} at its screen, where nobody answers: "
                    "cue it, or ask someone to look at its window")
        else:
            count = len(self.s.unseen)
            text = (f"{info.name} has left {count} cue{'s' if count != 1 else ''} unread for {waited} (the oldest from "
                    f"{self.s.unseen[0].sender}): it is busy with something else, or stuck")
        await _cue_conductor(info, Cue(id=f"stall-{workflow.uuid4()}", sender=info.name, text=text, sent_at=now(),
                                       kind="report", source="blocker", recipient=CONDUCTOR, ensemble=info.ensemble))


@dataclass
class _Departure:
    """What a player leaves when it ends: its undelivered cues handed on (to its new name, the conductor,
    or back to their senders), the board and the conductor told; read back by the `departure` query."""

    s: PlayerInput
    handed: list[Cue] = field(default_factory=list)  # each handed-over cue, `recipient` = who took it
    ended_at: str = ""

    async def hand_over(self, end: EndRequest) -> None:
        """Give every undelivered cue to whoever can act on it; keep (queryable) what nobody takes."""
        kept: list[Cue] = []
        self.s.pending[:0], self.s.unseen = self.s.unseen, []  # the session had them; its model never saw them
        while self.s.pending:  # cues may still arrive while we hand over
            batch, self.s.pending = self.s.pending, []
            for cue in batch:
                if not await self.pass_on(cue, end):
                    kept.append(cue)
        self.s.pending = kept  # still readable through the `pending` query of the closed run
        if kept:
            workflow.logger.warning("%d cue(s) to %s kept undelivered: nobody to hand them to", len(kept), self.s.info.name)

    async def pass_on(self, cue: Cue, end: EndRequest) -> bool:
        """Hand one cue on: to the renamed player; else to the conductor, else back to its sender."""
        info = self.s.info
        if end.moved_to:
            return await _cue_player(end.moved_to, cue)
        if cue.kind in ("joined", "notice"):
            return True  # news of the past: nothing left to redo
        handed = replace(cue, id=f"{cue.id}-undelivered", kind="undelivered", recipient=info.name, queued_at="",
                         ensemble=info.ensemble)
        if info.role != "conductor" and await _cue_conductor(info, handed):
            return self.handed_to(cue, CONDUCTOR)
        return await _cue_player(workflow_id(info.ensemble, cue.sender), handed) and self.handed_to(cue, cue.sender)

    def handed_to(self, cue: Cue, taker: str) -> bool:
        """Remember that `taker` took `cue`, so a returning session hears of it once."""
        self.handed.append(replace(cue, recipient=taker))
        return True

    async def leave_board(self, end: EndRequest) -> None:
        """Tell the ensemble's board: my claims reopen and my reservations go (or move to my new name)."""
        info = self.s.info
        moved_to = end.moved_to.removeprefix(workflow_id(info.ensemble, "")) if end.moved_to else ""
        # no board in this ensemble: nothing to release
        await _signal_quietly(board_id(info.ensemble), "player_left", PlayerLeft(name=info.name, reason=end.reason, moved_to=moved_to))

    async def tell_left(self, end: EndRequest) -> None:
        """Tell the conductor that this player left (its window closed, it crashed, it was stopped), and why."""
        info = self.s.info
        if info.role == "conductor" or end.moved_to:
            return  # a rename is announced by the new name
        await _cue_conductor(info, Cue(id=f"left-{workflow.info().workflow_id}-{workflow.info().run_id}", sender=info.name,
                                       text=f"{info.name} left the ensemble ({end.reason})", sent_at=now(), kind="notice",
                                       ensemble=info.ensemble))

    def departure(self, end: EndRequest | None) -> Departure:
        end = end or EndRequest(reason="")
        return Departure(reason=end.reason, away=end.away, last_contact=self.s.last_contact,
                         ended_at=self.ended_at, handed=list(self.handed))


@workflow.defn(sandboxed=SANDBOXED)
class PlayerWorkflow:
    """A live agent session: its description, its pending cues, its end."""

    @workflow.init
    def __init__(self, inp: PlayerInput) -> None:
        # State comes from the input here, not in `run`: a signal can be handled in the
        # run's first activation (a cue racing the start, or arriving across continue-as-new).
        self.s = inp
        self.inbox = _Inbox(inp)
        self.exchanges = _History(inp)
        self.receipts = _Receipts(inp, self.exchanges)
        if not inp.last_contact:
            inp.last_contact = now()
        self.liveness = _Liveness(inp)
        self.permits = _Permissions(inp, waiting_on="" if inp.info.waiting.startswith("permission") else inp.info.waiting)
        self.memo = _Memo(inp, self.inbox)
        self.stalls = _Stalls(inp)
        self.leaving = _Departure(inp)
        self.end: EndRequest | None = None
        self.wake = False

    # -- run ----------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PlayerInput) -> str:
        s = self.s
        if not s.continued:
            workflow.upsert_search_attributes(search_attributes(s.info, s.attributes).search_attributes)
            workflow.upsert_memo({"info": asdict(s.info)})
            await _announce(s)
        self.keeper = asyncio.create_task(self.memo.keep())  # runs until the run ends
        if s.info.role != "conductor" and workflow.patched(STALL_PATCH):
            self.stall_watch = asyncio.create_task(self.stalls.watch())  # runs until the run ends
        await self.live()
        await self.release_polls()
        self.leaving.ended_at = now()
        if workflow.patched(LEAVE_AT_ONCE_PATCH):  # one signal round trip at the end, not one after another
            await asyncio.gather(self.leaving.hand_over(self.end), self.leaving.leave_board(self.end),
                                 self.leaving.tell_left(self.end))
            return self.end.reason
        await self.leaving.hand_over(self.end)
        if workflow.patched(BOARD_LEFT_PATCH):
            await self.leaving.leave_board(self.end)
        if workflow.patched(LEFT_TOLD_PATCH):
            await self.leaving.tell_left(self.end)
        return self.end.reason

    async def live(self) -> None:
        """Wait for the next change or deadline, until the player ends; continue as new when due."""
        s = self.s
        while True:
            self.wake = False
            if self.end:
                return
            if self.inbox.this_run >= s.cues_per_run or workflow.info().is_continue_as_new_suggested():
                await self.release_polls()
                # The next run starts from the *start* memo unless told otherwise: carry the latest.
                workflow.continue_as_new(
                    replace(s, continued=True, previous_name=""),
                    memo={"info": asdict(s.info)},
                    search_attributes=search_attributes(s.info, s.attributes),
                )
            timeout = self.liveness.next_deadline()
            self.liveness.untimed = timeout is None
            try:
                await workflow.wait_condition(lambda: self.wake or bool(self.end), timeout=timeout)
            except asyncio.TimeoutError:
                self.end = self.liveness.due_end() or self.end

    async def release_polls(self) -> None:
        """Answer every waiting poll, then wait until no handler runs (before closing the run)."""
        self.liveness.release()
        await workflow.wait_condition(workflow.all_handlers_finished)

    # -- signals ------------------------------------------------------------

    @workflow.signal
    def cue(self, cue: Cue) -> None:
        """Receive a cue (or a report, a join notice, a handed-over cue)."""
        if not self.inbox.take(cue):
            return
        if self.s.info.role == "conductor":
            self.exchanges.record(cue, "in")
        self.memo.publish_unread()
        self.wake = True

    @workflow.signal
    def command(self, command: Command) -> None:
        """Public API of the conductor: a command from outside (Discord, a dashboard, ...)."""
        if self.s.info.role != "conductor":  # `claude-session-shop-x-conductor` may be shop's player `x-conductor`
            workflow.logger.warning("command to %s dropped: not a conductor", workflow.info().workflow_id)
            return
        self.cue(Cue(id=f"command-{workflow.uuid4()}", sender=command.source or "external", text=command.text, sent_at=now(),
                     kind="command", source=command.source, ensemble=self.s.info.ensemble))

    @workflow.signal
    def outgoing(self, cue: Cue) -> None:
        """Record a cue this player sent (the conductor's history shows cues out)."""
        if self.s.info.role == "conductor":
            self.exchanges.record(cue, "out")

    @workflow.signal
    def outgoing_batch(self, cues: list[Cue]) -> None:
        """Record the cues of one broadcast: one signal, where one per recipient would queue up."""
        for cue in cues:
            self.outgoing(cue)

    @workflow.signal
    async def seen(self, receipts: list[Receipt]) -> None:
        """Read receipts from this player's session: these cues reached its model."""
        await self.receipts.relay(self.apply_seen(receipts))

    @workflow.signal
    def receipt(self, receipt: Receipt) -> None:
        """A cue this conductor sent was seen by its recipient: note it in `history`."""
        self.exchanges.note_seen(receipt)

    @workflow.signal
    def holding(self, holds: bool) -> None:
        """The board: this player holds tasks or files now (or no more)."""
        self.s.holds = holds
        self.wake = True

    @workflow.signal
    def board_changed(self, version: int) -> None:
        """The board: its reservations changed (now at `version`); a session watching them reads them again."""
        self.s.board_version = max(self.s.board_version, version)

    @workflow.signal
    def finish(self, request: EndRequest) -> None:
        """End this player: the session exited, was terminated, or took a new name."""
        relay = self.apply_seen(request.seen) if request.seen else []
        if relay:  # a conductor's own cues seen at the last moment: noted in its history (histories before: none)
            asyncio.ensure_future(self.receipts.relay(relay))
        if not self.end:
            self.end = request
            self.wake = True

    def apply_seen(self, receipts: list[Receipt]) -> list[Receipt]:
        """Record read receipts (the unread count follows); return those the conductor should hear about."""
        relay = self.receipts.apply(receipts)
        self.memo.publish_unread()
        return relay

    # -- updates ------------------------------------------------------------

    @workflow.update
    def deliver(self, cue: Cue) -> str:
        """Take a cue from a session, as the `cue` signal does: the validator refuses another ensemble's.

        Answers with this run's ID: the sender may signal this run directly from now on (it is checked).
        """
        self.cue(cue)
        return workflow.info().run_id

    @deliver.validator
    def validate_deliver(self, cue: Cue) -> None:
        if not self.inbox.addressed_here(cue):
            raise ApplicationError(f"{NOT_HERE}: {self.s.info.ensemble}", type=NOT_HERE, non_retryable=True)

    @workflow.update
    async def poll(self, request: PollInput) -> PollResult:
        """Acknowledge pushed cues, then wait until there is something to push."""
        if self.inbox.acknowledge(request.ack, self.receipts.by_id):
            self.liveness.acknowledged()
        await self.receipts.relay(self.apply_seen(request.seen))
        generation = self.liveness.poll_began(request.wait)
        try:
            await workflow.wait_condition(
                lambda: bool(self.s.pending) or bool(self.end) or generation != self.liveness.poll_generation
                or 0 <= request.board < self.s.board_version,
                timeout=request.wait,
            )
        except asyncio.TimeoutError:
            pass
        finally:
            self.liveness.polls_waiting -= 1
        if self.liveness.poll_ended():
            self.wake = True
        if self.end:  # what is pending goes to whoever takes over, not to a session that is ending
            return PollResult(ended=self.end.reason, moved_to=self.end.moved_to)
        if generation != self.liveness.poll_generation:
            return PollResult(board=self.s.board_version)  # superseded by a newer poll, or released
        return PollResult(cues=self.inbox.batch(), board=self.s.board_version)

    @poll.validator
    def validate_poll(self, request: PollInput) -> None:
        if self.liveness.releasing:
            raise ApplicationError("player run is closing; poll again", non_retryable=True)

    @workflow.update
    async def watch(self, request: WatchInput) -> WatchResult:
        """Answer with the exchanges recorded after `request.after`, waiting until there is one."""
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: self.s.recorded != request.after or self.liveness.releasing or bool(self.end), timeout=request.wait
            )
        return self.exchanges.since(request.after)

    @watch.validator
    def validate_watch(self, request: WatchInput) -> None:
        if self.liveness.releasing:
            raise ApplicationError("player run is closing; watch again", non_retryable=True)

    @workflow.update
    def set_part(self, part: str) -> PlayerInfo:
        """Describe what this player works on."""
        self.s.info.part = part
        workflow.upsert_memo({"info": asdict(self.s.info)})
        return self.s.info

    @workflow.update
    def describe(self, info: PlayerInfo) -> PlayerInfo:
        """Replace the description (directory, branch, ... changed); name and role stay."""
        info.name, info.role, info.ensemble = self.s.info.name, self.s.info.role, self.s.info.ensemble
        info.started, info.unread = self.s.info.started, self.s.info.unread
        info.waiting, info.waiting_since, info.waiting_request = (  # the workflow keeps these
            self.s.info.waiting, self.s.info.waiting_since, self.s.info.waiting_request)
        self.s.info = info
        workflow.upsert_search_attributes(search_attributes(info, self.s.attributes).search_attributes)
        workflow.upsert_memo({"info": asdict(info)})
        return info

    @workflow.update
    async def wait_seen(self, request: WaitSeen) -> Receipt:
        """Wait up to `wait` s for the cue `id` to reach the model; its receipt, or one with no path."""
        try:
            await workflow.wait_condition(
                lambda: request.id in self.receipts.by_id or bool(self.end) or self.liveness.releasing, timeout=request.wait
            )
        except asyncio.TimeoutError:
            pass
        return self.receipts.by_id.get(request.id) or Receipt(id=request.id, path="")

    # -- permission requests --------------------------------------------------
    # Asked by the session's hook (or the Copilot bridge); the conductor is cued with it, and its
    # history shows the request and the answer.

    @workflow.update
    async def ask_permission(self, request: Permission) -> Permission:
        """Record a permission request (asking again returns the first); cue the conductor unless a rule answered it."""
        known = self.permits.find(request.id)
        if known:
            return known
        self.permits.add(request)
        if request.decision:
            await self.note_permission(request)
        elif self.s.info.role == "conductor":
            self.exchanges.record(self.permits.asking(request), "in")
        else:
            await _cue_conductor(self.s.info, self.permits.asking(request))
        return request

    @workflow.update
    async def permit(self, answer: Permit) -> Permission:
        """Answer a waiting permission request (the first answer decides; the validator refuses a second)."""
        request = self.permits.decide(answer)
        await self.note_permission(request)
        return request

    @permit.validator
    def validate_permit(self, answer: Permit) -> None:
        self.permits.check(answer)

    @workflow.signal
    async def answer_permission(self, answer: Permit) -> None:
        """Public API: answer a permission request `{request_id, decision, reason, by}`; a late or second answer is dropped."""
        try:
            self.permits.check(answer)
        except ApplicationError as e:
            workflow.logger.info("permission answer ignored: %s", e)
            return
        await self.permit(answer)

    @workflow.update
    async def await_permission(self, request: WaitPermission) -> Permission:
        """Wait up to `wait` s for the request's answer; the request as it stands then."""
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: bool(self.permits.find(request.id) and self.permits.find(request.id).decision)
                or bool(self.end) or self.liveness.releasing, timeout=request.wait)
        return self.permits.find(request.id) or Permission(id=request.id, player=self.s.info.name, tool="", preview="")

    @workflow.signal
    def waiting_for(self, what: str) -> None:
        """The session says what it waits for besides permissions ("input"), or "" when it no longer waits."""
        self.permits.waiting_for(what)

    @workflow.signal
    def permission_noted(self, request: Permission) -> None:
        """A player's permission request was answered (or a standing rule answered it): the conductor's history shows it."""
        if self.s.info.role == "conductor" and request.ensemble in ("", self.s.info.ensemble):
            self.exchanges.record_permit(request)

    async def note_permission(self, request: Permission) -> None:
        """An answer (or a rule's) goes into the conductor's history, where the request is."""
        if self.s.info.role == "conductor":
            self.exchanges.record_permit(request)
            return
        # no conductor: nobody keeps a history
        await _signal_quietly(workflow_id(self.s.info.ensemble, CONDUCTOR), "permission_noted", request)

    # -- queries ------------------------------------------------------------

    @workflow.query
    def info(self) -> PlayerInfo:
        return self.s.info

    @workflow.query
    def pending(self) -> list[Cue]:
        return self.s.pending

    @workflow.query
    def history(self) -> list[Exchange]:
        return self.s.history

    @workflow.query
    def permissions(self) -> list[Permission]:
        return self.s.permissions

    @workflow.query
    def read_receipts(self, ids: list[str]) -> list[Receipt]:
        """Receipts of these cues: seen (with path), unread (path ""), or absent (not here)."""
        return self.receipts.read(ids)

    @workflow.query
    def status(self) -> dict:
        """Liveness facts: last contact with the session, pending count, cues received."""
        return {
            "last_contact": self.s.last_contact,
            "pending": len(self.s.pending),
            "received": self.s.received,
            "unread": self.inbox.unread(),
            "ending": self.end.reason if self.end else "",
        }

    @workflow.query
    def departure(self) -> Departure:
        """How this player ended (empty reason while it runs): asked by a session that comes back."""
        return self.leaving.departure(self.end)

    @workflow.query
    def presence(self) -> dict:
        """What `tempo status` needs to tell an away session from an active one."""
        return self.liveness.presence()


# ---------------------------------------------------------------------------
# Scheduled cues
# A Temporal Schedule starts one ScheduledCueWorkflow per fire: it cues the targets it names
# (kind "scheduled", `source` the schedule's name), hands on what nobody can take, and ends.
# ---------------------------------------------------------------------------

RESOLVE_TARGETS_ACTIVITY = "tempo-resolve-targets"  # activities in tempo.py, run by every session's worker
DELETE_SCHEDULE_ACTIVITY = "tempo-delete-schedule"
ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_attempts=5)


def schedule_id(ensemble: str, name: str) -> str:
    """Return the ID of the Temporal Schedule `name` in `ensemble`."""
    return f"claude-tempo-schedule-{ensemble}-{name}"


def scheduled_workflow_id(ensemble: str, name: str) -> str:
    """Return the ID prefix of the runs a schedule starts (Temporal appends the fire time)."""
    return f"claude-tempo-scheduled-{ensemble}-{name}"


@dataclass
class ScheduledCueInput:
    """What one fire of a schedule does: cue `to` (names, `all`, `role:NAME`) with `text`."""

    ensemble: str
    schedule: str  # the schedule's name
    creator: str  # the sender of the cues; undelivered cues come back here with no conductor
    to: list[str]
    text: str
    once: bool = False  # a one-off: delete the schedule after this fire


@dataclass
class TargetsInput:
    """The resolving activity's input: whom `to` names in `ensemble`, seen by `creator`."""

    ensemble: str
    to: list[str]
    creator: str


@dataclass
class Targets:
    """The players to cue, and for each target that cannot be cued, why not."""

    names: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class ScheduledCueResult:
    """Who got the cue, and where each undelivered one went (conductor, creator, or nobody: "")."""

    delivered: list[str] = field(default_factory=list)
    undelivered: dict[str, str] = field(default_factory=dict)


@workflow.defn(sandboxed=SANDBOXED)
class ScheduledCueWorkflow:
    """One fire of a schedule: resolve the targets (an activity: it needs visibility), cue them, end."""

    @workflow.run
    async def run(self, inp: ScheduledCueInput) -> ScheduledCueResult:
        targets = await workflow.execute_activity(
            RESOLVE_TARGETS_ACTIVITY, TargetsInput(inp.ensemble, inp.to, inp.creator), result_type=Targets,
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        run = workflow.info().workflow_id  # unique per fire: a retried signal is still one cue
        cue = Cue(id=f"scheduled-{run}", sender=inp.creator, text=inp.text, sent_at=now(), kind="scheduled", source=inp.schedule,
                  ensemble=inp.ensemble)
        result = ScheduledCueResult()
        for name in targets.names:
            if await signal_player(workflow_id(inp.ensemble, name), replace(cue, id=f"{cue.id}-{name}", recipient=name)):
                result.delivered.append(name)
            else:  # it left between the lookup and now
                targets.missing[name] = "not running"
        for name, why in targets.missing.items():
            workflow.logger.info("scheduled cue %s not delivered to %s: %s", run, name, why)
            handed = replace(cue, id=f"{cue.id}-{name}-undelivered", kind="undelivered", recipient=name)
            result.undelivered[name] = await self.hand_on(inp, handed)
        if inp.once:
            await workflow.execute_activity(
                DELETE_SCHEDULE_ACTIVITY, schedule_id(inp.ensemble, inp.schedule),
                start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
            )
        return result

    async def hand_on(self, inp: ScheduledCueInput, cue: Cue) -> str:
        """Give an undelivered cue to the conductor, else back to the creator; return who took it."""
        for taker in (CONDUCTOR, inp.creator):
            if taker != cue.recipient and await signal_player(workflow_id(inp.ensemble, taker), cue):
                return taker
        return ""


async def signal_player(target: str, cue: Cue) -> bool:
    """Signal `cue` to the player workflow `target`; False when that player is not running."""
    try:
        await workflow.get_external_workflow_handle(target).signal("cue", cue)
        return True
    except Exception as e:  # not found / already closed
        workflow.logger.info("signal to %s failed: %s", target, e)
        return False


def now() -> str:
    return workflow.now().isoformat()


def duration(seconds: float) -> str:
    """Say how long in words a person reads at a glance: "40 seconds", "1 minute", "12 minutes"."""
    if seconds < 90:
        return f"{round(seconds)} second{'s' if round(seconds) != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"


def parse(stamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 stamp written by `now()`."""
    return datetime.fromisoformat(stamp).timestamp()


# ---------------------------------------------------------------------------
# Task board and file reservations
# One BoardWorkflow per ensemble: its tasks (open → claimed → done / failed, or back to open) and
# the files its players reserve. Claims and reservations are Updates whose validators refuse what
# cannot be (taken, blocked, not my role), and whose handlers check again without awaiting: two
# claims in one activation both pass the validator, only the first handler wins.
# ---------------------------------------------------------------------------

TASK_STATES = ("open", "claimed", "done", "failed")
BOARD_CHANGES_PER_RUN = 1000  # continue as new after this many changes, if the server has not asked earlier
BOARD_DONE_LIMIT = 2000  # finished tasks kept (the oldest go first); open and claimed ones always stay
BOARD_PLAYERS_ACTIVITY = "tempo-board-players"  # the players a role names (tempo.py; the task's role, or all)
BOARD_SENDER = "tempo"  # who the board's cues come from (the conductor and players read "from tempo")


def board_id(ensemble: str) -> str:
    """Return the workflow ID of the task board of `ensemble`."""
    return f"claude-tempo-board-{ensemble}"


@dataclass
class Task:
    """One piece of work on the board."""

    id: str
    title: str
    details: str = ""
    role: str = ""  # only a player of this role (name, name's prefix before '-', role or agent) may claim it
    after: list[str] = field(default_factory=list)  # ids that must be done first
    state: str = "open"
    by: str = ""  # the claimant (and, once done or failed, who finished it)
    since: str = ""  # when it entered its state
    result: str = ""
    added_by: str = ""
    added_at: str = ""


@dataclass
class Reservation:
    """A path or glob, relative to the repository's top, that a player holds (exclusively or shared)."""

    repo: str  # the repository (its origin, or its main checkout): worktrees of one repository share it
    path: str
    holder: str
    reason: str = ""
    exclusive: bool = True
    since: str = ""
    expires: str = ""  # ISO 8601; "" for as long as the holder plays


@dataclass
class BoardInput:
    """All of a board's state: the workflow input, carried across continue-as-new."""

    ensemble: str
    tasks: list[Task] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    next_id: int = 1
    told: list[str] = field(default_factory=list)  # tasks whose becoming claimable was announced
    holders: list[str] = field(default_factory=list)  # players told they hold something (their `holding` signal)
    watchers: list[str] = field(default_factory=list)  # players whose sessions keep the reservations (`watch`)
    reserved_version: int = 0  # bumped at each change of the reservations; told to the watchers


@dataclass
class TaskAdd:
    by: str
    tasks: list[Task]


@dataclass
class TaskClaim:
    """Claim `id`, or ("") the first open task `by` may take; `roles` are the words its role matches."""

    by: str
    roles: list[str] = field(default_factory=list)
    id: str = ""
    conductor: bool = False


@dataclass
class TaskFinish:
    """Move a claimed task to `state` (done, failed, or open: released), with a result text."""

    by: str
    id: str
    state: str
    result: str = ""
    conductor: bool = False


@dataclass
class ReserveRequest:
    holder: str
    repo: str
    paths: list[str]
    reason: str = ""
    exclusive: bool = True
    ttl: float = 0.0  # seconds; 0: until released or the holder leaves


@dataclass
class ReleaseRequest:
    holder: str
    repo: str = ""  # "" with no paths: everything the holder holds
    paths: list[str] = field(default_factory=list)


@dataclass
class TaskPage:
    """Which tasks a listing wants: filters (empty: any), then `limit` of them from `offset` (limit 0: all)."""

    state: str = ""
    role: str = ""
    by: str = ""
    offset: int = 0
    limit: int = 0


@dataclass
class PlayerLeft:
    """A player ended: its claims go back to open, its reservations go (or both move, on a rename)."""

    name: str
    reason: str
    moved_to: str = ""  # the new name, on a rename


def glob_regex(pattern: str) -> str:
    """A regex for a path pattern: `**` crosses directories, `*` and `?` do not; a plain path covers what is under it."""
    out, i = [], 0
    p = pattern.strip().strip("/")
    while i < len(p):
        if p.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif p.startswith("**", i):
            out.append(".*")
            i += 2
        elif p[i] == "*":
            out.append("[^/]*")
            i += 1
        elif p[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re_escape(p[i]))
            i += 1
    return "".join(out) + "(?:/.*)?"


def re_escape(c: str) -> str:
    return "\\" + c if c in ".^$+{}[]|()\\" else c


def path_matches(pattern: str, path: str) -> bool:
    """Whether `path` (relative to the repository's top) falls under `pattern`."""
    return re.fullmatch(glob_regex(pattern), path.strip("/")) is not None


def paths_overlap(a: str, b: str) -> bool:
    """Whether two patterns may name one file (exact for paths; for two globs, either matching the other)."""
    return path_matches(a, b) or path_matches(b, a)


def role_words(name: str, role: str, agent: str) -> list[str]:
    """The words a task's role may say to mean this player: its name and its prefixes before '-', role, agent."""
    parts = name.split("-")
    return sorted({name, role, agent, *("-".join(parts[:i]) for i in range(1, len(parts)))} - {""})


@workflow.defn(sandboxed=SANDBOXED)
class BoardWorkflow:
    """An ensemble's task board and file reservations."""

    @workflow.init
    def __init__(self, inp: BoardInput) -> None:
        self.s = inp
        self.changes = 0
        self.announce: list[str] = []  # tasks that just became claimable: told by the run loop
        self.left: list[tuple[str, list[Task]]] = []  # claims released by a departure: told to the conductor
        self.wake = False
        self.told_version = inp.reserved_version  # the reservations version the watchers were told last

    @workflow.run
    async def run(self, inp: BoardInput) -> None:
        while True:
            timeout = self.next_expiry()
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(lambda: self.wake or bool(self.announce) or bool(self.left), timeout=timeout)
            self.wake = False
            self.expire()
            await self.tell_watchers()  # first: these signals leave with the change's own workflow task
            while self.left:
                name, tasks = self.left.pop(0)
                await self.tell_conductor(name, tasks)
            if self.announce:
                ready, self.announce = self.announce, []
                await self.tell_ready(ready)
            await self.tell_holders()
            if self.changes >= BOARD_CHANGES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self.tell_watchers()  # a change the last handlers made is told by this run
                if not self.announce and not self.left and self.told_version == self.s.reserved_version:
                    workflow.continue_as_new(self.s)

    # -- tasks ------------------------------------------------------------------

    @workflow.update
    def add(self, request: TaskAdd) -> list[Task]:
        """Add tasks (an empty id gets the next number); return them as stored."""
        ids, self.s.next_id = self.check_add(request)
        added = []
        for t, task_id in zip(request.tasks, ids):
            t.id = task_id
            t.state, t.by, t.since, t.result = "open", "", now(), ""
            t.added_by, t.added_at = request.by, now()
            self.s.tasks.append(t)
            added.append(t)
        self.changed()
        self.find_ready()  # one whose prerequisites are all done already
        return added

    @add.validator
    def validate_add(self, request: TaskAdd) -> None:
        self.check_add(request)

    def check_add(self, request: TaskAdd) -> tuple[list[str], int]:
        """The ids the tasks get (an empty one: the next free number) and the next number after them."""
        if not request.tasks:
            raise ApplicationError("no task to add", non_retryable=True)
        known, given, ids, number = self.ids(), [t.id for t in request.tasks if t.id], [], self.s.next_id
        for t in request.tasks:
            if not t.id:
                while str(number) in known or str(number) in given or str(number) in ids:
                    number += 1
            ids.append(t.id or str(number))
        for t in request.tasks:
            if not t.title.strip():
                raise ApplicationError("a task needs a title", non_retryable=True)
            if t.id and (t.id in known or given.count(t.id) > 1):
                raise ApplicationError(f"task {t.id} exists already: give another id, or none for the next number",
                                       non_retryable=True)
            missing = [a for a in t.after if a not in known and a not in ids]
            if missing:
                raise ApplicationError(f"task {t.title!r} comes after unknown task(s) {', '.join(missing)}",
                                       non_retryable=True)
        return ids, number

    @workflow.update
    def claim(self, request: TaskClaim) -> Task:
        """Claim a task for `request.by`: atomic, so of twenty claims at once exactly one wins."""
        task = self.claimable(request)  # again: an earlier claim of this activation may have taken it
        task.state, task.by, task.since = "claimed", request.by, now()
        self.changed()
        return task

    @claim.validator
    def validate_claim(self, request: TaskClaim) -> None:
        self.claimable(request)

    def claimable(self, request: TaskClaim) -> Task:
        """The task `request` may claim, or an error that says why not."""
        if request.id:
            task = self.task(request.id)
            why = self.why_not(task, request)
            if why:
                raise ApplicationError(why, non_retryable=True)
            return task
        for task in self.s.tasks:
            if not self.why_not(task, request):
                return task
        open_ = [t for t in self.s.tasks if t.state == "open"]
        raise ApplicationError(
            f"no open task you may take ({len(open_)} open: " + ("; ".join(f"{t.id}: {self.why_not(t, request)}" for t in open_[:5]) or "none")
            + ")", non_retryable=True)

    def why_not(self, task: Task, request: TaskClaim) -> str:
        if task.state == "claimed":
            return f"task {task.id} is claimed by {task.by} (since {task.since})"
        if task.state != "open":
            return f"task {task.id} is {task.state}" + (f" (by {task.by})" if task.by else "")
        blocking = [a for a in task.after if self.state_of(a) != "done"]
        if blocking:
            return f"task {task.id} waits for task(s) " + ", ".join(f"{a} ({self.state_of(a)})" for a in blocking)
        if task.role and task.role not in request.roles and not request.conductor:
            return f"task {task.id} is for role {task.role!r}"
        return ""

    @workflow.update
    def finish(self, request: TaskFinish) -> Task:
        """Mark a claimed task done or failed (with its result), or release it (back to open)."""
        task = self.finishable(request)
        task.state, task.since, task.result = request.state, now(), request.result
        if request.state == "open":
            task.by = ""
        self.changed()
        if request.state == "done":
            self.find_ready()
        self.trim()
        return task

    @finish.validator
    def validate_finish(self, request: TaskFinish) -> None:
        self.finishable(request)

    def finishable(self, request: TaskFinish) -> Task:
        if request.state not in ("done", "failed", "open"):
            raise ApplicationError(f"unknown state {request.state!r}", non_retryable=True)
        task = self.task(request.id)
        if task.state != "claimed":
            raise ApplicationError(f"task {task.id} is {task.state}, not claimed: claim it first", non_retryable=True)
        if task.by != request.by and not request.conductor:
            raise ApplicationError(f"task {task.id} is claimed by {task.by}, not you", non_retryable=True)
        return task

    # -- reservations -------------------------------------------------------------

    @workflow.update
    async def reserve(self, request: ReserveRequest) -> list[Reservation]:
        """Reserve paths for `request.holder` (all or none); a path it holds already is updated.

        Answers once the watching players' workflows have the change (`tell_watchers`): from then on
        their sessions enforce it as soon as their polls answer and they read it (tens of ms)."""
        self.check_reserve(request)
        at = now()
        expires = (workflow.now() + timedelta(seconds=request.ttl)).isoformat() if request.ttl > 0 else ""
        made = []
        for path in request.paths:
            self.s.reservations = [r for r in self.s.reservations
                                   if not (r.holder == request.holder and r.repo == request.repo and r.path == path)]
            r = Reservation(repo=request.repo, path=path, holder=request.holder, reason=request.reason,
                            exclusive=request.exclusive, since=at, expires=expires)
            self.s.reservations.append(r)
            made.append(r)
        self.changed()
        self.reservations_changed()
        await self.tell_watchers()
        return made

    @reserve.validator
    def validate_reserve(self, request: ReserveRequest) -> None:
        self.check_reserve(request)

    def check_reserve(self, request: ReserveRequest) -> None:
        if not request.paths:
            raise ApplicationError("no path to reserve", non_retryable=True)
        t = workflow.now()
        for path in request.paths:
            for r in self.s.reservations:
                if (r.holder != request.holder and r.repo == request.repo and (r.exclusive or request.exclusive)
                        and not expired(r, t) and paths_overlap(r.path, path)):
                    raise ApplicationError(
                        f"{path} overlaps {r.path}, reserved {'exclusively ' if r.exclusive else ''}by {r.holder} "
                        f"since {r.since}" + (f" ({r.reason})" if r.reason else "") + f": ask {r.holder} with `cue`",
                        non_retryable=True)

    @workflow.update
    async def release(self, request: ReleaseRequest) -> list[Reservation]:
        """Release the holder's reservations of these paths (none given: all of them); return what went
        once the watching players' workflows have the change, as `reserve` does."""
        gone = [r for r in self.s.reservations if r.holder == request.holder
                and (not request.paths or (r.repo == request.repo and r.path in request.paths))]
        self.s.reservations = [r for r in self.s.reservations if r not in gone]
        self.changed()
        if gone:
            self.reservations_changed()
            await self.tell_watchers()
        return gone

    # -- departures -------------------------------------------------------------

    @workflow.signal
    def player_left(self, left: PlayerLeft) -> None:
        """A player ended: on a rename its claims and reservations move; else claims reopen, reservations go."""
        mine = [t for t in self.s.tasks if t.state == "claimed" and t.by == left.name]
        for t in mine:
            t.by, t.since = (left.moved_to, t.since) if left.moved_to else ("", now())
            t.state = "claimed" if left.moved_to else "open"
        held = any(r.holder == left.name for r in self.s.reservations)
        for r in self.s.reservations:
            if r.holder == left.name and left.moved_to:
                r.holder = left.moved_to
        self.s.watchers = sorted({left.moved_to if w == left.name else w for w in self.s.watchers} - {""})
        if held:
            self.reservations_changed()
        if not left.moved_to:
            self.s.reservations = [r for r in self.s.reservations if r.holder != left.name]
            if mine:
                self.left.append((f"{left.name} ({left.reason})", mine))
                self.find_ready()  # the reopened ones are claimable again: their role hears it
        self.changed()

    @workflow.signal
    def watch(self, name: str) -> None:
        """A session keeps the reservations (its PreToolUse hook judges edits by them without asking the
        board): player `name` is told each change by its `board_changed` signal, which ends its poll."""
        if name not in self.s.watchers:
            self.s.watchers.append(name)
            self.wake = True

    @workflow.update
    def watch_reservations(self, name: str) -> int:
        """`watch`, answered: a session trusts its copy only once a board that tells watchers said so
        (a worker of a tempo before watchers refuses the update; a signal it would keep unread).
        Counted in `changes`: each run's updates stay under the server's total per run."""
        self.watch(name)
        self.changed()
        return self.s.reserved_version

    # -- queries ----------------------------------------------------------------

    # Queries answer plain dicts: a client turning 1 000 Task dataclasses back from JSON resolves the
    # type hints of each (~1 s); dicts cost nothing, and the fields are the dataclasses' all the same.
    @workflow.query
    def tasks(self) -> list[dict]:
        return [asdict(t) for t in self.s.tasks]

    @workflow.query
    def task_page(self, page: TaskPage) -> dict:
        """A page of the tasks that pass the filters, their number and the board's count by state.

        A listing of 1 000 tasks as a whole was slow at every step (the worker turning them to JSON,
        the client back, the tool's models, ~250 KB to the model, which Claude Code cuts at 100 000
        characters anyway); a page of the matches, each without its empty fields, costs what a page costs."""
        counts: dict[str, int] = {}
        found = []
        for t in self.s.tasks:
            counts[t.state] = counts.get(t.state, 0) + 1
            if (not page.state or t.state == page.state) and (not page.role or t.role == page.role) and (not page.by or t.by == page.by):
                found.append(t)
        shown = found[page.offset:page.offset + page.limit] if page.limit > 0 else found[page.offset:]
        return {"total": len(found), "counts": counts, "tasks": [task_row(t) for t in shown]}

    @workflow.query
    def reservations(self) -> list[dict]:
        t = workflow.now()
        return [asdict(r) for r in self.s.reservations if not expired(r, t)]

    # -- helpers ----------------------------------------------------------------

    def ids(self) -> set[str]:
        return {t.id for t in self.s.tasks}

    def task(self, task_id: str) -> Task:
        for t in self.s.tasks:
            if t.id == task_id:
                return t
        raise ApplicationError(f"no task {task_id!r} on the board of ensemble {self.s.ensemble}", non_retryable=True)

    def state_of(self, task_id: str) -> str:
        return next((t.state for t in self.s.tasks if t.id == task_id), "done")  # trimmed: it was done

    def changed(self) -> None:
        self.changes += 1
        self.wake = True

    def reservations_changed(self) -> None:
        """A reservation was taken, changed or released (expiry is not a change: watchers judge `expires` themselves).
        Not counted in `changes` itself (its callers count as they did before watchers: histories replay alike)."""
        self.s.reserved_version += 1

    def find_ready(self) -> None:
        """Queue, once each, the open tasks whose prerequisites are now all done."""
        for t in self.s.tasks:
            if t.state == "open" and t.after and t.id not in self.s.told and all(self.state_of(a) == "done" for a in t.after):
                self.s.told.append(t.id)
                self.announce.append(t.id)
        del self.s.told[:-BOARD_DONE_LIMIT]

    def trim(self) -> None:
        finished = [t for t in self.s.tasks if t.state in ("done", "failed")]
        if len(finished) > BOARD_DONE_LIMIT:
            drop = {t.id for t in finished[: len(finished) - BOARD_DONE_LIMIT]}
            self.s.tasks = [t for t in self.s.tasks if t.id not in drop]

    def next_expiry(self) -> float | None:
        stamps = [parse(r.expires) for r in self.s.reservations if r.expires]
        return max(0.001, min(stamps) - workflow.now().timestamp()) if stamps else None

    def expire(self) -> None:
        t = workflow.now()
        self.s.reservations = [r for r in self.s.reservations if not expired(r, t)]

    async def tell_holders(self) -> None:
        """Tell each player whether it holds something now: a holder that stops polling is soon judged gone."""
        now_holding = sorted({t.by for t in self.s.tasks if t.state == "claimed"} | {r.holder for r in self.s.reservations})
        for name in sorted(set(now_holding) ^ set(self.s.holders)):  # one gone has nothing to be told
            await _signal_quietly(workflow_id(self.s.ensemble, name), "holding", name in now_holding)
        self.s.holders = now_holding

    async def tell_watchers(self) -> None:
        """Tell the watching players the reservations changed; one gone (its workflow closed) is dropped."""
        version = self.s.reserved_version
        if version == self.told_version:
            return
        self.told_version = version
        if not self.s.watchers:  # no await then: the histories of boards before watchers replay alike
            return
        names = list(self.s.watchers)  # all at once: one workflow task, not one per watcher
        told = await asyncio.gather(*(workflow.get_external_workflow_handle(workflow_id(self.s.ensemble, name)).signal(
            "board_changed", version) for name in names), return_exceptions=True)
        gone = {name for name, result in zip(names, told) if isinstance(result, BaseException)}
        self.s.watchers = [w for w in self.s.watchers if w not in gone]

    async def tell_conductor(self, who: str, tasks: list[Task]) -> None:
        """The conductor hears once which claims a departed player had, now open again."""
        listed = "; ".join(f"{t.id}: {t.title}" for t in tasks)
        text = f"{who} left holding {len(tasks)} task(s), open again on the board: {listed}"
        cue = Cue(id=f"board-left-{workflow.uuid4()}", sender=BOARD_SENDER, text=text, sent_at=now(), kind="notice", source="board", ensemble=self.s.ensemble)
        await signal_player(workflow_id(self.s.ensemble, CONDUCTOR), cue)

    async def tell_ready(self, ids: list[str]) -> None:
        """Players of each task's role hear once (one cue each) which tasks they may take now."""
        by_role: dict[str, list[Task]] = {}
        for t in self.s.tasks:
            if t.id in ids and t.state == "open":
                by_role.setdefault(t.role, []).append(t)
        for role, tasks in by_role.items():
            targets = await workflow.execute_activity(
                BOARD_PLAYERS_ACTIVITY, TargetsInput(self.s.ensemble, [role], BOARD_SENDER), result_type=Targets, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
            )
            listed = "; ".join(f"{t.id}: {t.title}" for t in tasks)
            text = f"ready to claim on the board (task_claim): {listed}"
            cue = Cue(id=f"board-ready-{workflow.uuid4()}", sender=BOARD_SENDER, text=text, sent_at=now(), kind="notice", source="board", ensemble=self.s.ensemble)
            for name in targets.names:
                await signal_player(workflow_id(self.s.ensemble, name), replace(cue, id=f"{cue.id}-{name}", recipient=name))


def task_row(t: Task) -> dict:
    """A task as a listing shows it: its fields that say something (id, title and state always)."""
    return {k: v for k, v in vars(t).items() if v or k in ("id", "title", "state")}


def expired(r: Reservation, t: datetime) -> bool:
    return bool(r.expires) and datetime.fromisoformat(r.expires) <= t
