"""Drives parley's A2A endpoint with the official Python SDK (a2a-sdk).

    python client.py run URL PRICING_TOKEN MARKETING_TOKEN MAYA_TOKEN
    python client.py reread URL PRICING_TOKEN TASK_ID

`run`: resolves the agent card; an intention approved (its artifact read);
one that escalates followed on a stream to input-required, settled by a
person over the HTTP API, and seen completing on the same stream; another
agent's task refused; a pending intention canceled (withdrawn), an ended
one not cancelable; a text
part answered with a failed task; ListTasks. Prints a JSON line with the
escalated task's id. `reread`: reads that task back (after a restart) with
its history. Exits non-zero on any surprise.
"""

import asyncio
import json
import sys
import urllib.request
import uuid

import httpx
from google.protobuf import json_format

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, new_data_part, new_text_part
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def intention(price, revenue):
    return {"kind": "intend", "intention": {
        "action": {"type": "set_price", "sku": "E2", "price_minor": price},
        "reasoning": "match a rival", "objective": "sales-growth",
        "impact": {"revenue_minor": revenue, "margin_minor": -600}}}


def message(data=None, text=None, context=None):
    part = new_data_part(data) if data is not None else new_text_part(text)
    return SendMessageRequest(message=Message(
        message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[part], context_id=context))


async def client_for(url, token, streaming):
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    card = await A2ACardResolver(http, url).get_agent_card()
    return card, ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


def settle(url, human_token, intention_seq, option):
    body = json.dumps({"producer": "maya", "kind": "human_resolution", "intention": intention_seq,
                       "option": option, "rationale": "the campaign covers it"}).encode()
    req = urllib.request.Request(f"{url}/v1/commands", data=body, method="POST", headers={
        "Authorization": f"Bearer {human_token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        check(r.status == 200, f"the human's resolution: {r.status}")


async def run(url, pricing, marketing, maya):
    card, plain = await client_for(url, pricing, streaming=False)
    check(card.name == "parley" and card.capabilities.streaming, f"the card: {card.name}")
    check(any(s.id == "announce-intention" for s in card.skills), "the announce skill")
    # 1. Approved: a completed task with the approved action as an artifact.
    events = [e async for e in plain.send_message(message(intention(5399, -4800), context="price-war"))]
    task = events[-1].task
    check(task.status.state == TaskState.TASK_STATE_COMPLETED, f"approved: {task.status.state}")
    check(task.context_id == "price-war", f"context {task.context_id}")
    art = get_data_parts(task.artifacts[0].parts)[0]
    check(art["outcome"] == "approved" and art["action"]["price_minor"] == 5399, f"artifact {art}")
    # 2. Escalated: followed on a stream to input-required, settled by a person, completed.
    _, streaming = await client_for(url, pricing, streaming=True)
    states, escalated = [], None
    async for event in streaming.send_message(message(intention(5499, 900000), context="price-war")):
        if event.HasField("task"):
            escalated = event.task.id
            states.append(event.task.status.state)
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)
        if states[-1] == TaskState.TASK_STATE_INPUT_REQUIRED and len(states) == 1:
            data = get_data_parts(event.task.status.message.parts)[-1]
            options = data["decision"]["outcome"]["escalation"]["options"]
            approve = next(i for i, o in enumerate(options) if o["choice"] == "approve-this")
            settle(url, maya, int(escalated.split("-")[1]), approve)
    check(states == [TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_COMPLETED], f"stream states {states}")
    # 3. Another agent's task is not visible.
    _, other = await client_for(url, marketing, streaming=False)
    try:
        await other.get_task(GetTaskRequest(id=escalated))
        check(False, "marketing read pricing's task")
    except TaskNotFoundError:
        pass
    # 4. Cancel: a pending intention is withdrawn (canceled); an ended task
    # is not cancelable, nor is another agent's.
    events = [e async for e in plain.send_message(message(intention(5450, 700000), context="second-thoughts"))]
    pending = events[-1].task
    check(pending.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, f"pending: {pending.status.state} {pending.status.message.parts[0].text}")
    try:
        await other.cancel_task(CancelTaskRequest(id=pending.id))
        check(False, "marketing canceled pricing's task")
    except TaskNotFoundError:
        pass
    canceled = await plain.cancel_task(CancelTaskRequest(id=pending.id))
    check(canceled.status.state == TaskState.TASK_STATE_CANCELED, f"canceled: {canceled.status.state}")
    try:
        await plain.cancel_task(CancelTaskRequest(id=task.id))
        check(False, "a completed task was canceled")
    except TaskNotCancelableError as e:
        check("ended" in str(e), f"cancel error {e}")
    # 5. A text part: a failed task saying what parley accepts.
    events = [e async for e in plain.send_message(message(text="please lower E2"))]
    failed = events[-1].task
    check(failed.status.state == TaskState.TASK_STATE_FAILED, f"text part: {failed.status.state}")
    check("data part" in failed.status.message.parts[0].text, "the failed task says what parley accepts")
    # 6. ListTasks: pricing's two intentions in the context.
    listed = await plain.list_tasks(ListTasksRequest(context_id="price-war"))
    check(len(listed.tasks) == 2, f"listed {len(listed.tasks)}")
    print(json.dumps({"escalated": escalated, "approved": task.id}), flush=True)


async def reread(url, pricing, task_id):
    _, plain = await client_for(url, pricing, streaming=False)
    task = await plain.get_task(GetTaskRequest(id=task_id))
    check(task.status.state == TaskState.TASK_STATE_COMPLETED, f"after restart: {task.status.state}")
    roles = [m.role for m in task.history]
    check(roles == [Role.ROLE_USER, Role.ROLE_AGENT, Role.ROLE_AGENT], f"history roles {roles}")
    outcomes = [get_data_parts(m.parts)[-1]["decision"]["outcome"]["kind"] for m in task.history[1:]]
    check(outcomes == ["escalated", "approved"], f"history {outcomes}")
    print(json.dumps({"reread": task_id, "history": len(task.history)}), flush=True)


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    asyncio.run(run(url, *rest) if mode == "run" else reread(url, *rest))
