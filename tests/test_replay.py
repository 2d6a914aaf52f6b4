"""Recorded histories replay against today's workflows: a change to what a running workflow does fails here.

Sessions of different tempo versions share one task queue, so any worker may replay any player's
history: the code must issue the commands each recorded history holds, in its order (a change is
gated by a `workflow.patched` id: see "Patches" in tempo_workflows.py). The histories in
tests/histories/<commit>/ were recorded by scripts/record_histories.py with that commit's code (real
`tempo serve` sessions, hooks, the board, a schedule, a rename, a continue-as-new, a killed session);
`index.json` names each file's workflow ID.
"""

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tempo_workflows import BoardWorkflow, PlayerWorkflow, ScheduledCueWorkflow

pytestmark = pytest.mark.anyio

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted((index.parent / name, workflow_id) for index in HISTORIES.glob("*/index.json")
                  for name, workflow_id in json.loads(index.read_text()).items())


def test_the_recordings_cover_each_workflow_and_the_players_paths():
    """What the recordings hold, so a new recording that drops a path is noticed."""
    events = [e for path, _ in RECORDED for e in json.loads(path.read_text())["events"]]
    types = {e["workflowExecutionStartedEventAttributes"]["workflowType"]["name"] for e in events
             if "workflowExecutionStartedEventAttributes" in e}
    assert types == {"PlayerWorkflow", "ScheduledCueWorkflow", "BoardWorkflow"}
    signals = {e["workflowExecutionSignaledEventAttributes"]["signalName"] for e in events
               if "workflowExecutionSignaledEventAttributes" in e}
    updates = {e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"] for e in events
               if "workflowExecutionUpdateAcceptedEventAttributes" in e}
    assert {"cue", "seen", "finish", "holding", "waiting_for", "answer_permission", "command", "outgoing_batch",
            "receipt", "permission_noted", "player_left"} <= signals
    assert {"poll", "ask_permission", "await_permission", "permit", "wait_seen", "watch", "set_part", "claim"} <= updates
    ends = {e["eventType"] for e in events}
    assert {"EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW", "EVENT_TYPE_TIMER_FIRED"} <= ends


@pytest.mark.parametrize("path, workflow_id", RECORDED, ids=[f"{p.parent.name}/{p.stem}" for p, _ in RECORDED])
async def test_a_recorded_history_replays(path: Path, workflow_id: str):
    """Replaying raises on nondeterminism: another command, another order, a patch marker moved."""
    await Replayer(workflows=[PlayerWorkflow, ScheduledCueWorkflow, BoardWorkflow]).replay_workflow(
        WorkflowHistory.from_json(workflow_id, path.read_text()))
