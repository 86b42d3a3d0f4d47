#!/usr/bin/env python3
"""The seed's marketing agent as an A2A client (the official `a2a-sdk`).

    pip install a2a-sdk                      # in a venv
    python3 examples/a2a_marketing.py --server http://127.0.0.1:7420 --admin-token pk_...

It registers itself (`marketing-a2a`, domain marketing) and gets a token
through the HTTP API as the admin, then talks to parley only over A2A:
resolves the agent card, announces the weekend promotion (15 % off the
earbuds category) as a streamed task and prints every state parley gives
it. When parley rejects the promotion for margin, it reads the skus the
decision names as safe and announces the promotion on those only; when a
person must decide, it waits on the stream. Run it on the store
`examples/agents.py` sets up. Exits 0 once each task it sent reached a state
parley decided (approved, rejected, or waiting for a person).
"""

import argparse
import asyncio
import json
import sys
import urllib.request
import uuid

import httpx

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part
from a2a.types.a2a_pb2 import Message, Role, SendMessageRequest, TaskState

HOUR_MS = 3_600_000
AGENT = "marketing-a2a"


def api(server, token, method, path, body=None):
    """One request to parley's HTTP API (set-up only)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server}{path}", data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def register(server, admin_token):
    """The admin registers this agent and grants its token."""
    state = api(server, admin_token, "GET", "/v1/state")
    admin = state["admins"][0]["name"]
    api(server, admin_token, "POST", "/v1/commands", {
        "producer": admin, "kind": "agent_registered", "idempotency_key": f"register-{AGENT}",
        "profile": {"agent": AGENT, "domain": "marketing", "priority": 40}})
    token = api(server, admin_token, "POST", "/v1/tokens", {"name": AGENT, "role": "agent"})["token"]
    return token, state["at_ms"]


def promotion(target, now_ms):
    return {"kind": "intend", "intention": {
        "action": {"type": "launch_promotion", "target": target, "discount_bp": 1500,
                   "starts_at_ms": now_ms + 24 * HOUR_MS, "ends_at_ms": now_ms + 72 * HOUR_MS},
        "reasoning": "earbuds weekend: 15 % off from tomorrow", "objective": "sales-growth",
        "impact": {"revenue_minor": 300_000, "margin_minor": 60_000}}}


def passing_skus(task):
    """The skus a margin refusal names as safe (from the decision's trace)."""
    for data in get_data_parts(task.status.message.parts):
        for step in data.get("decision", {}).get("trace", []):
            if step.get("finding", {}).get("passing"):
                return step["finding"]["passing"]
    return []


async def announce(client, target, now_ms):
    """Sends one promotion and follows its task; the last task seen."""
    msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, context_id="earbuds-weekend",
                  parts=[new_data_part(promotion(target, now_ms))])
    task = None
    async for event in client.send_message(SendMessageRequest(message=msg)):
        if event.HasField("task"):
            task = event.task
            status = task.status
        elif event.HasField("status_update"):
            status = event.status_update.status
            task.status.CopyFrom(status)
        else:
            continue
        text = " / ".join(get_text_parts(status.message.parts))
        print(f"{AGENT}: {task.id} {TaskState.Name(status.state)}: {text}", flush=True)
        if status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            print(f"{AGENT}: waiting for a person to settle it (the console, or `parley resolve`)", flush=True)
    return task


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="http://127.0.0.1:7420")
    p.add_argument("--admin-token", required=True)
    args = p.parse_args()
    token, now_ms = register(args.server, args.admin_token)
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=None)
    card = await A2ACardResolver(http, args.server).get_agent_card()
    print(f"{AGENT}: found {card.name} ({', '.join(s.id for s in card.skills)})", flush=True)
    client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
    task = await announce(client, {"category": "earbuds"}, now_ms)
    safe = passing_skus(task) if task.status.state == TaskState.TASK_STATE_REJECTED else []
    if safe:
        print(f"{AGENT}: reacting: the same promotion on {', '.join(safe)} only", flush=True)
        task = await announce(client, {"skus": safe}, now_ms)
    decided = task.status.state in (TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_REJECTED,
                                    TaskState.TASK_STATE_INPUT_REQUIRED)
    for artifact in task.artifacts:
        print(f"{AGENT}: approved: {json.dumps(get_data_parts(artifact.parts)[0]['action'])}", flush=True)
    return 0 if decided else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
