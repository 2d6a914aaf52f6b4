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

Only the standard library and temporalio are imported here (the workflow
sandbox re-imports this module); ``tempo.py`` imports it, never the reverse.
Annotations are real types, not strings: the payload converter resolves a
dataclass's hints on every signal, and strings make that 4x slower (a run that
must catch up on thousands of cues in one activation then trips the 2 s
deadlock detector on every retry, and never recovers).
"""

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError


# ---------------------------------------------------------------------------
# Public contract: IDs, search attributes, messages
# External clients rely on these names; change them only with a migration.
# ---------------------------------------------------------------------------

DEFAULT_TASK_QUEUE = "claude-tempo"
CONDUCTOR = "conductor"  # the conductor's name, reserved for it
UNDELIVERED_TIMEOUT = 180.0  # seconds a cue may wait uncollected before its player is dead
IDLE_TIMEOUT = 86400.0  # seconds without any contact from the session, nothing pending
# Seconds a worker has for one workflow task (Temporal's default is 10). Every session runs a
# worker; a stopped one (a laptop asleep) still holds the tasks its open polls took: this is how
# long a cue to anyone waits before another session's worker runs it.
TASK_TIMEOUT = 4.0
HISTORY_LIMIT = 200  # exchanges a conductor keeps for the `history` query
SEEN_LIMIT = 1000  # recent cue ids remembered to drop duplicate deliveries
LATE_TIMER = 1.0  # s a deadline may fire late before the workflow suspects it was not running (an outage)
RECONNECT_GRACE = 10.0  # s a session gets to reach the server again after an outage (its retries back off to 5 s)
RECEIPT_LIMIT = 500  # read receipts a player keeps for senders who ask
UNSEEN_LIMIT = 500  # cues its session has but its model has not seen yet, kept for a hand-over
CUES_PER_RUN = 500  # continue as new after this many cues, if the server has not asked earlier
POLL_BATCH_CUES = 100  # a poll answers with at most this many cues ...
POLL_BATCH_CHARS = 1_000_000  # ... and this much text: an update result must stay under 2 MB
# Patches (`workflow.patched`): histories recorded before them replay as they ran.
MEMO_ONCE_PATCH = "memo-once-per-task"  # the unread count reaches the memo once per workflow task

ENSEMBLE = SearchAttributeKey.for_keyword("ClaudeTempoEnsemble")
PLAYER_ID = SearchAttributeKey.for_keyword("ClaudeTempoPlayerId")
HOST = SearchAttributeKey.for_keyword("ClaudeTempoHost")
REPO = SearchAttributeKey.for_keyword("ClaudeTempoRepo")
BRANCH = SearchAttributeKey.for_keyword("ClaudeTempoBranch")
ROLE = SearchAttributeKey.for_keyword("ClaudeTempoRole")
SEARCH_ATTRIBUTES = (ENSEMBLE, PLAYER_ID, HOST, REPO, BRANCH, ROLE)


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
    delivery: str = ""  # the delivery paths live in the session: "channel hooks waiter", ...
    worktree: str = ""  # the linked git worktree it works in (tempo/<name> branch), if any


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


@dataclass
class PollInput:
    """The session's long poll: acknowledge what it pushed, then wait up to `wait` s."""

    ack: list[str] = field(default_factory=list)
    wait: float = 300.0
    seen: list[Receipt] = field(default_factory=list)  # read receipts gathered since the last poll


@dataclass
class PollResult:
    """Cues not yet acknowledged, or why the player is ending."""

    cues: list[Cue] = field(default_factory=list)
    ended: str = ""
    moved_to: str = ""


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
# Signals change state, queries only read, updates change state and answer.
# ---------------------------------------------------------------------------


@workflow.defn
class PlayerWorkflow:
    """A live agent session: its description, its pending cues, its end."""

    @workflow.init
    def __init__(self, inp: PlayerInput) -> None:
        # State comes from the input here, not in `run`: a signal can be handled in the
        # run's first activation (a cue racing the start, or arriving across continue-as-new).
        self.s = inp
        self.seen: set[str] = set(inp.seen)
        self.receipts: dict[str, Receipt] = {r.id: r for r in inp.receipts}
        if not inp.last_contact:
            inp.last_contact = now()
        self.end: EndRequest | None = None
        self.releasing = False  # no new polls: the run is closing
        self.poll_generation = 0
        self.polls_waiting = 0  # a held poll is a live session, however long ago it began
        self.untimed = False  # the run loop waits without a deadline (while a poll is held)
        self.received_this_run = 0
        self.wake = False
        self.grace_until = 0.0  # after an outage, the session may take until then to acknowledge
        self.handed: list[Cue] = []  # cues handed over at the end (read by the `departure` query)
        self.ended_at = ""
        self.last_wait = 0.0  # how long the session's latest poll asked to be held
        self.memo_stale = False  # the unread count changed since the memo last said it

    # -- run ----------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PlayerInput) -> str:
        s = self.s
        if not s.continued:
            workflow.upsert_search_attributes(search_attributes(s.info, s.attributes).search_attributes)
            workflow.upsert_memo({"info": asdict(s.info)})
            await self.announce()
        self.keeper = asyncio.create_task(self.keep_memo())  # runs until the run ends
        while True:
            self.wake = False
            if self.end:
                break
            if self.should_continue_as_new():
                await self.release_polls()
                # The next run starts from the *start* memo unless told otherwise: carry the latest.
                workflow.continue_as_new(
                    replace(s, continued=True, previous_name=""),
                    memo={"info": asdict(s.info)},
                    search_attributes=search_attributes(s.info, s.attributes),
                )
            timeout = self.next_deadline()
            self.untimed = timeout is None
            try:
                await workflow.wait_condition(lambda: self.wake or bool(self.end), timeout=timeout)
            except asyncio.TimeoutError:
                self.check_deadlines()
        await self.release_polls()
        self.ended_at = now()
        await self.hand_over()
        return self.end.reason

    def should_continue_as_new(self) -> bool:
        return self.received_this_run >= self.s.cues_per_run or workflow.info().is_continue_as_new_suggested()

    def next_deadline(self) -> float | None:
        """Seconds until the player should be judged dead: a stale cue, or silence."""
        s = self.s
        if s.pending:
            due = max(self.undelivered_since() + s.undelivered_timeout, self.grace_until)
        elif self.polls_waiting:
            return None  # the session is holding a poll: alive until that poll ends
        else:
            due = parse(s.last_contact) + s.idle_timeout
        return max(0.001, due - parse(now()))

    def check_deadlines(self) -> None:
        s = self.s
        t = parse(now())
        if s.pending and t >= self.grace_until and t - self.undelivered_since() >= s.undelivered_timeout:
            if t - (self.undelivered_since() + s.undelivered_timeout) > LATE_TIMER and not self.grace_until:
                # The timer fired late: the server (or every worker) was down, and the session could not
                # acknowledge meanwhile. Give it the time to reach the server again before judging it gone.
                self.grace_until = t + RECONNECT_GRACE
                return
            self.end = EndRequest(reason=f"undelivered for {s.undelivered_timeout:g}s: the session is gone", away=True)
        elif not s.pending and not self.polls_waiting and t - parse(s.last_contact) >= s.idle_timeout:
            self.end = EndRequest(reason=f"no contact for {s.idle_timeout:g}s", away=True)

    def undelivered_since(self) -> float:
        """When the oldest pending cue began to wait for the session: its arrival, or the session's
        latest poll if that came later (a poll answered with it; its ack comes with the next one)."""
        return max(parse(self.s.pending[0].queued_at), parse(self.s.last_contact))

    async def release_polls(self) -> None:
        """Answer every waiting poll, then wait until no handler runs (before closing the run)."""
        self.releasing = True
        self.poll_generation += 1
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def announce(self) -> None:
        """Tell the conductor that this player joined (or took a new name)."""
        info = self.s.info
        if info.role == "conductor":
            return
        text = (
            f"{self.s.previous_name} is now known as {info.name}"
            if self.s.previous_name
            else f"{info.name} is back after {duration(self.s.away_for)}"
            if self.s.away_for
            else f"{info.name} joined ({info.host}:{info.directory})"
        )
        await self.signal_conductor(
            Cue(id=f"joined-{workflow.info().workflow_id}-{workflow.info().run_id}", sender=info.name, text=text, sent_at=now(), kind="joined")
        )

    async def hand_over(self) -> None:
        """Give every undelivered cue to whoever can act on it; keep (queryable) what nobody takes."""
        kept: list[Cue] = []
        self.s.pending[:0], self.s.unseen = self.s.unseen, []  # the session had them; its model never saw them
        while self.s.pending:  # cues may still arrive while we hand over
            batch, self.s.pending = self.s.pending, []
            for cue in batch:
                if not await self.pass_on(cue):
                    kept.append(cue)
        self.s.pending = kept  # still readable through the `pending` query of the closed run
        if kept:
            workflow.logger.warning("%d cue(s) to %s kept undelivered: nobody to hand them to", len(kept), self.s.info.name)

    async def pass_on(self, cue: Cue) -> bool:
        """Hand one cue on: to the renamed player; else to the conductor, else back to its sender."""
        end, info = self.end, self.s.info
        if end.moved_to:
            return await self.signal(end.moved_to, cue)
        if cue.kind in ("joined", "notice"):
            return True  # news of the past: nothing left to redo
        handed = replace(cue, id=f"{cue.id}-undelivered", kind="undelivered", recipient=info.name, queued_at="")
        if info.role != "conductor" and await self.signal_conductor(handed):
            return self.handed_to(cue, CONDUCTOR)
        return await self.signal(workflow_id(info.ensemble, cue.sender), handed) and self.handed_to(cue, cue.sender)

    def handed_to(self, cue: Cue, taker: str) -> bool:
        """Remember that `taker` took `cue`, so a returning session hears of it once."""
        self.handed.append(replace(cue, recipient=taker))
        return True

    async def signal_conductor(self, cue: Cue) -> bool:
        return await self.signal(workflow_id(self.s.info.ensemble, CONDUCTOR), cue)

    async def signal(self, target: str, cue: Cue) -> bool:
        """Signal `cue` to another player; False when that player is not running."""
        if target == workflow.info().workflow_id:
            return False
        try:
            await workflow.get_external_workflow_handle(target).signal("cue", cue)
            return True
        except Exception as e:  # not found / already closed: nobody to tell
            workflow.logger.info("signal to %s failed: %s", target, e)
            return False

    # -- signals ------------------------------------------------------------

    @workflow.signal
    def cue(self, cue: Cue) -> None:
        """Receive a cue (or a report, a join notice, a handed-over cue)."""
        if cue.id in self.seen:
            return
        self.remember(cue.id)
        cue.queued_at = now()
        self.s.pending.append(cue)
        self.s.received += 1
        self.received_this_run += 1
        if self.s.info.role == "conductor":
            self.record(cue, "in")
        self.publish_unread()
        self.wake = True

    @workflow.signal
    def command(self, command: Command) -> None:
        """Public API of the conductor: a command from outside (Discord, a dashboard, ...)."""
        self.cue(
            Cue(
                id=f"command-{workflow.uuid4()}",
                sender=command.source or "external",
                text=command.text,
                sent_at=now(),
                kind="command",
                source=command.source,
            )
        )

    @workflow.signal
    def outgoing(self, cue: Cue) -> None:
        """Record a cue this player sent (the conductor's history shows cues out)."""
        if self.s.info.role == "conductor":
            self.record(cue, "out")

    @workflow.signal
    async def seen(self, receipts: list[Receipt]) -> None:
        """Read receipts from this player's session: these cues reached its model."""
        await self.relay(self.apply_seen(receipts))

    @workflow.signal
    def receipt(self, receipt: Receipt) -> None:
        """A cue this conductor sent was seen by its recipient: note it in `history`."""
        self.note_seen(receipt)

    @workflow.signal
    def outgoing_batch(self, cues: list[Cue]) -> None:
        """Record the cues of one broadcast: one signal, where one per recipient would queue up."""
        for cue in cues:
            self.outgoing(cue)

    @workflow.signal
    def finish(self, request: EndRequest) -> None:
        """End this player: the session exited, was terminated, or took a new name."""
        if not self.end:
            self.end = request
            self.wake = True

    # -- updates ------------------------------------------------------------

    @workflow.update
    async def poll(self, request: PollInput) -> PollResult:
        """Acknowledge pushed cues, then wait until there is something to push."""
        self.acknowledge(request.ack)
        await self.relay(self.apply_seen(request.seen))
        self.s.last_contact = now()
        self.last_wait = request.wait
        self.poll_generation += 1
        generation = self.poll_generation
        self.polls_waiting += 1
        try:
            await workflow.wait_condition(
                lambda: bool(self.s.pending) or bool(self.end) or generation != self.poll_generation,
                timeout=request.wait,
            )
        except asyncio.TimeoutError:
            pass
        finally:
            self.polls_waiting -= 1
        # `last_contact` stays the poll's start: a poll ending proves nothing about the session.
        if not self.polls_waiting and self.untimed:
            self.wake = True  # the idle deadline is back (woken only then: timers cost history)
        if self.end:  # what is pending goes to whoever takes over, not to a session that is ending
            return PollResult(ended=self.end.reason, moved_to=self.end.moved_to)
        if generation != self.poll_generation:
            return PollResult()  # superseded by a newer poll, or released
        return PollResult(cues=self.batch())

    @poll.validator
    def validate_poll(self, request: PollInput) -> None:
        if self.releasing:
            raise ApplicationError("player run is closing; poll again", non_retryable=True)

    @workflow.update
    async def watch(self, request: WatchInput) -> WatchResult:
        """Answer with the exchanges recorded after `request.after`, waiting until there is one."""
        s = self.s
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                lambda: s.recorded != request.after or self.releasing or bool(self.end), timeout=request.wait
            )
        # A cursor ahead of ours is from an earlier conductor: the caller gets the whole history.
        fresh = s.recorded - request.after if 0 <= request.after <= s.recorded else len(s.history)
        return WatchResult(exchanges=s.history[len(s.history) - min(fresh, len(s.history)):], cursor=s.recorded)

    @watch.validator
    def validate_watch(self, request: WatchInput) -> None:
        if self.releasing:
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
        self.s.info = info
        workflow.upsert_search_attributes(search_attributes(info, self.s.attributes).search_attributes)
        workflow.upsert_memo({"info": asdict(info)})
        return info

    @workflow.update
    async def wait_seen(self, request: WaitSeen) -> Receipt:
        """Wait up to `wait` s for the cue `id` to reach the model; its receipt, or one with no path."""
        try:
            await workflow.wait_condition(
                lambda: request.id in self.receipts or bool(self.end) or self.releasing, timeout=request.wait
            )
        except asyncio.TimeoutError:
            pass
        return self.receipts.get(request.id) or Receipt(id=request.id, path="")

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
    def read_receipts(self, ids: list[str]) -> list[Receipt]:
        """Receipts of these cues: seen (with path), unread (path ""), or absent (not here)."""
        waiting = {c.id for c in (*self.s.pending, *self.s.unseen)}
        return [self.receipts.get(i) or Receipt(id=i, path="") for i in ids if i in self.receipts or i in waiting]

    @workflow.query
    def status(self) -> dict:
        """Liveness facts: last contact with the session, pending count, cues received."""
        return {
            "last_contact": self.s.last_contact,
            "pending": len(self.s.pending),
            "received": self.s.received,
            "unread": self.unread(),
            "ending": self.end.reason if self.end else "",
        }

    @workflow.query
    def departure(self) -> Departure:
        """How this player ended (empty reason while it runs): asked by a session that comes back."""
        end = self.end or EndRequest(reason="")
        return Departure(reason=end.reason, away=end.away, last_contact=self.s.last_contact,
                         ended_at=self.ended_at, handed=list(self.handed))

    @workflow.query
    def presence(self) -> dict:
        """What `tempo status` needs to tell an away session from an active one."""
        return {
            "last_contact": self.s.last_contact,
            "polling": self.polls_waiting > 0,
            "wait": self.last_wait,
            "pending": len(self.s.pending),
            "oldest": self.s.pending[0].queued_at if self.s.pending else "",
        }

    # -- helpers --------------------------------------------------------------

    def acknowledge(self, ids: list[str]) -> None:
        """The session has these cues: they wait for its model now, not for its process."""
        if ids:
            done = set(ids)
            self.s.unseen += [c for c in self.s.pending if c.id in done and c.id not in self.receipts]
            self.s.pending = [c for c in self.s.pending if c.id not in done]
            del self.s.unseen[:-UNSEEN_LIMIT]
            self.grace_until = 0.0 if not self.s.pending else self.grace_until

    def apply_seen(self, receipts: list[Receipt]) -> list[Receipt]:
        """Record read receipts; return those a conductor should hear about (cues it sent)."""
        relay = []
        # One pass over what waits, whatever the number of receipts: a burst's receipts come by the
        # hundred, and a pass per receipt over a backlog of a thousand costs a workflow task ~10^6 steps.
        waiting: dict[str, Cue] = {}
        for c in (*self.s.unseen, *self.s.pending) if receipts else ():
            waiting.setdefault(c.id, c)
        done: set[str] = set()
        for r in receipts:
            if r.id in self.receipts:
                continue
            cue = waiting.get(r.id)
            if cue:
                r.sender, r.recipient = cue.sender, self.s.info.name
                done.add(r.id)
            r.at = r.at or now()
            self.receipts[r.id] = r
            self.s.receipts.append(r)
            if self.s.info.role == "conductor":
                self.note_seen(r)
            elif r.sender == CONDUCTOR:
                relay.append(r)
        if done:
            self.s.unseen = [c for c in self.s.unseen if c.id not in done]
            self.s.pending = [c for c in self.s.pending if c.id not in done]
        if len(self.s.receipts) > RECEIPT_LIMIT:
            for old in self.s.receipts[:-RECEIPT_LIMIT]:
                self.receipts.pop(old.id, None)
            del self.s.receipts[:-RECEIPT_LIMIT]
        self.publish_unread()
        return relay

    async def relay(self, receipts: list[Receipt]) -> None:
        for r in receipts:
            with contextlib.suppress(Exception):  # a conductor that is gone has no history to keep
                await workflow.get_external_workflow_handle(workflow_id(self.s.info.ensemble, CONDUCTOR)).signal("receipt", r)

    def note_seen(self, r: Receipt) -> None:
        for line in reversed(self.s.history):
            if line.id == r.id:
                line.seen = f"{r.path} at {r.at}"
                break

    def unread(self) -> int:
        return len(self.s.pending) + len(self.s.unseen)

    def publish_unread(self) -> None:
        """Keep the memo's unread count current: `ensemble` and `tempo status` show it."""
        if self.s.info.unread != self.unread():
            self.s.info.unread = self.unread()
            if workflow.patched(MEMO_ONCE_PATCH):
                self.memo_stale = True  # `keep_memo` says it once this workflow task has taken in all it got
            else:
                workflow.upsert_memo({"info": asdict(self.s.info)})

    async def keep_memo(self) -> None:
        """Upsert the memo at most once per workflow task: one upsert per cue was half of a burst's
        history (a thousand cues, a thousand memo events), and a long history is a slow replay."""
        while True:
            await workflow.wait_condition(lambda: self.memo_stale)
            self.memo_stale = False
            workflow.upsert_memo({"info": asdict(self.s.info)})

    def batch(self) -> list[Cue]:
        """The oldest pending cues that fit in one poll result (at least one)."""
        cues, size = [], 0
        for cue in self.s.pending:
            size += len(cue.text) + len(cue.sender) + 200
            if cues and (len(cues) >= POLL_BATCH_CUES or size > POLL_BATCH_CHARS):
                break
            cues.append(cue)
        return cues

    def remember(self, cue_id: str) -> None:
        self.seen.add(cue_id)
        self.s.seen.append(cue_id)
        if len(self.s.seen) > SEEN_LIMIT:
            self.seen.discard(self.s.seen.pop(0))

    def record(self, cue: Cue, direction: str) -> None:
        self.s.history.append(
            Exchange(
                at=now(),
                direction=direction,
                kind=cue.kind,
                sender=cue.sender,
                recipient=cue.recipient or (self.s.info.name if direction == "in" else ""),
                text=cue.text,
                source=cue.source,
                id=cue.id,
            )
        )
        del self.s.history[:-HISTORY_LIMIT]
        self.s.recorded += 1



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


@workflow.defn
class ScheduledCueWorkflow:
    """One fire of a schedule: resolve the targets (an activity: it needs visibility), cue them, end."""

    @workflow.run
    async def run(self, inp: ScheduledCueInput) -> ScheduledCueResult:
        targets = await workflow.execute_activity(
            RESOLVE_TARGETS_ACTIVITY, TargetsInput(inp.ensemble, inp.to, inp.creator), result_type=Targets,
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        run = workflow.info().workflow_id  # unique per fire: a retried signal is still one cue
        cue = Cue(id=f"scheduled-{run}", sender=inp.creator, text=inp.text, sent_at=now(), kind="scheduled", source=inp.schedule)
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
