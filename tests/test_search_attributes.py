"""Namespaces without tempo's search attributes: tempo adds them where allowed, else works with two.

Each test makes its own namespace on the shared dev server. Where tempo may not add attributes
(Temporal Cloud API keys), the test puts nginx in front of the dev server answering the operator
service's calls with PERMISSION_DENIED, as Cloud does, and gives the namespace only the two
attributes claude-tempo 0.3 registers.
"""

import asyncio
import json
import shlex
import subprocess
import uuid

import pytest

import tempo
from conftest import ToolFailed, grpc_refusal, play, start_grpc_front, wait_until
from test_ensemble import by_name, git_repo

pytestmark = pytest.mark.anyio

ALL = set(tempo.ATTRIBUTE_USES)
ORIGINAL = {"ClaudeTempoEnsemble", "ClaudeTempoPlayerId"}  # what a claude-tempo 0.3 server has
OPERATOR = "/temporal.api.operatorservice.v1.OperatorService/"


async def new_namespace(address: str, attributes: set[str] = frozenset()) -> str:
    """Register a fresh namespace (no custom search attributes) and add `attributes` to it."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    client = await tempo.connect(tempo.Config(address=address))
    namespace = f"ns{uuid.uuid4().hex[:10]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)))
    if attributes:
        keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes={n: keyword for n in attributes}))
    return namespace


async def attributes_of(address: str, namespace: str) -> set[str]:
    return await tempo.namespace_attributes(await tempo.connect(tempo.Config(address=address, namespace=namespace)), namespace)


@pytest.fixture
def refusing_front(temporal, tmp_path):
    """nginx before the dev server that refuses every operator-service call (listing and adding attributes)."""
    refusals = "".join(grpc_refusal(OPERATOR + method, 7, "Request unauthorized")
                       for method in ("AddSearchAttributes", "ListSearchAttributes"))
    front = start_grpc_front(tmp_path / "nginx", temporal.address, server=refusals)
    yield front
    front.stop()


async def test_serve_registers_missing_attributes_itself(temporal, ensemble):
    namespace = await new_namespace(temporal.address)
    assert await attributes_of(temporal.address, namespace) == set()
    async with play(temporal, ensemble, TEMPORAL_NAMESPACE=namespace) as a:
        await a.call("set_name", name="alice")
        assert set(by_name(await a.call("ensemble"))) == {"alice"}
    assert await attributes_of(temporal.address, namespace) == ALL


async def test_players_work_with_only_the_two_original_attributes(temporal, ensemble, refusing_front, tmp_path):
    namespace = await new_namespace(temporal.address, ORIGINAL)
    url = "https://github.com/acme/widgets.git"
    here, clone = git_repo(tmp_path / "one", origin=url), git_repo(tmp_path / "two", origin=url)
    elsewhere = tmp_path / "three"
    elsewhere.mkdir()
    env = {"TEMPORAL_ADDRESS": refusing_front.address, "TEMPORAL_NAMESPACE": namespace}
    async with (
        play(temporal, ensemble, cwd=str(here), CLAUDE_TEMPO_HOST="laptop", **env) as a,
        play(temporal, ensemble, cwd=str(clone), CLAUDE_TEMPO_HOST="server", **env) as b,
        play(temporal, ensemble, cwd=str(elsewhere), CLAUDE_TEMPO_HOST="laptop", **env) as c,
    ):
        for p, name in ((a, "a"), (b, "b"), (c, "c")):
            await p.call("set_name", name=name)
        assert set(by_name(await a.call("ensemble"))) == {"a", "b", "c"}
        assert set(by_name(await a.call("ensemble", scope="machine"))) == {"a", "c"}  # filtered on the memo
        assert set(by_name(await a.call("ensemble", scope="repo"))) == {"a", "b"}
        await a.call("cue", to="b", message="hello without attributes")
        assert (await b.next_cue())["content"] == "hello without attributes"
        await b.call("set_part", part="reviewing")

        async def part_listed():
            return by_name(await c.call("ensemble")).get("b", {}).get("part") == "reviewing"

        await wait_until(part_listed)
        # The players' workflows carry only the attributes the namespace has.
        client = await tempo.connect(tempo.Config(address=temporal.address, namespace=namespace))
        desc = await client.get_workflow_handle(f"claude-session-{ensemble}-b").describe()
        tempos = {pair.key.name for pair in desc.typed_search_attributes if pair.key.name.startswith("ClaudeTempo")}
        assert tempos == ORIGINAL
    assert await attributes_of(temporal.address, namespace) == ORIGINAL  # nothing was added behind the refusal


async def test_preflight_status_and_up_name_what_is_missing_and_the_command(temporal, refusing_front, cli, tmp_path):
    namespace = await new_namespace(temporal.address, ORIGINAL)
    env = {"TEMPORAL_ADDRESS": refusing_front.address, "TEMPORAL_NAMESPACE": namespace}
    project = tmp_path / "project"
    project.mkdir()
    missing = "ClaudeTempoHost, ClaudeTempoRepo, ClaudeTempoBranch, ClaudeTempoRole"
    results = {
        "preflight": cli("preflight", "-d", str(project), **env),
        "status": cli("status", **env),
        "up": cli("up", "-d", str(project), **env),
    }
    commands = set()
    for name, result in results.items():
        output = result.stdout
        assert output.count(f"lacks search attributes {missing}") == 1, (name, output, result.stderr)
        assert "scope machine lists the whole ensemble" in output  # the cost
        assert "three random names" not in output + result.stderr
        command = next(line for line in output.splitlines() if "temporal operator search-attribute create" in line)
        commands.add(command[command.index("temporal operator"):])
    assert results["status"].returncode == 0 and results["up"].returncode == 0, results["up"].stdout
    assert len(commands) == 1
    status = json.loads(cli("status", "--json", **env).stdout)
    assert status["temporal"]["missing_attributes"] == missing.split(", ")

    # The command is exact: run against the real server (not the refusing front), it adds what was missing.
    argv = shlex.split(commands.pop().replace(refusing_front.address, temporal.address))
    argv[0] = tempo.temporal_binary()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    assert await attributes_of(temporal.address, namespace) == ALL
    after = cli("status", **env)
    assert "lacks search attribute" not in after.stdout


def test_cloud_gets_the_tcld_command():
    cfg = tempo.Config(address="acct.a1b2c.tmprl.cloud:7233", namespace="acct.a1b2c")
    note, command = tempo.missing_attributes_note(cfg, ORIGINAL, "Request unauthorized")
    assert "may not add them (Request unauthorized)" in note
    assert command.startswith("tcld namespace search-attributes add --namespace acct.a1b2c "
                              "--search-attribute ClaudeTempoHost=Keyword --search-attribute ClaudeTempoRepo=Keyword")
    assert tempo.missing_attributes_note(cfg, ALL) == ("", "")


async def test_an_rpc_failure_is_reported_as_itself(temporal, ensemble, tmp_path):
    refuse_start = grpc_refusal("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution", 7,
                                "Request unauthorized for StartWorkflowExecution")
    front = start_grpc_front(tmp_path / "nginx", temporal.address, server=refuse_start)
    try:
        async with play(temporal, ensemble, TEMPORAL_ADDRESS=front.address) as a:
            with pytest.raises(ToolFailed) as failed:
                await a.call("ensemble")
    finally:
        front.stop()
    assert "Request unauthorized for StartWorkflowExecution" in str(failed.value)
    assert "three random names" not in str(failed.value)


async def test_list_players_filters_on_the_memo_without_the_attributes(temporal, ensemble):
    # Without ClaudeTempoEnsemble, an ensemble is found by its workflow ID prefix: "a" must not list "a-b".
    async with play(temporal, ensemble) as a, play(temporal, ensemble + "-b") as b:
        await a.call("set_name", name="x")
        await b.call("set_name", name="y")
        client = await tempo.connect(tempo.Config(address=temporal.address))
        listed = await asyncio.wait_for(tempo.list_players(client, ensemble, attributes=set()), 10)
        assert [p.name for p in listed] == ["x"]


async def test_players_work_with_none_of_the_attributes(temporal, ensemble, refusing_front):
    namespace = await new_namespace(temporal.address)
    env = {"TEMPORAL_ADDRESS": refusing_front.address, "TEMPORAL_NAMESPACE": namespace}
    async with play(temporal, ensemble, **env) as a, play(temporal, ensemble, **env) as b:
        await a.call("set_name", name="a")
        await b.call("set_name", name="b")
        assert set(by_name(await a.call("ensemble"))) == {"a", "b"}  # found by workflow ID prefix
        await b.call("cue", to="a", message="no attributes at all")
        assert (await a.next_cue())["content"] == "no attributes at all"
    assert await attributes_of(temporal.address, namespace) == set()
