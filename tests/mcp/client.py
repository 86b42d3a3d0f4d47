#!/usr/bin/env python3
"""An LLM host's side of parley's MCP server, with the official Python MCP
SDK (`mcp` from PyPI) as the client, over Streamable HTTP or stdio.

    client.py http URL TOKEN            # parley serve's /mcp
    client.py stdio PARLEY_BIN SERVER   # `parley mcp --server SERVER` (PARLEY_TOKEN set)

Acting for the marketing agent, it initializes, lists tools and resources,
reads the rule set, announces a promotion that conflicts with the price the
pricing agent set (parley rejects it for margin), explains the decision, and
is refused when it writes as another agent or calls a human-only tool, and
follows parley://sku/E2 (a subscription, on Streamable HTTP) while it
publishes a fact about E2. It
prints one JSON line: what it saw, for tests/mcp.rs to check against the log.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp import types
from mcp.types import TextContent

UPDATED = []  # resource URIs the server said changed
UPDATE_SEEN = None  # an asyncio.Event, set on the first update (made in the loop)


async def on_message(message):
    if isinstance(message, types.ServerNotification):
        root = message.root
        if isinstance(root, types.ResourceUpdatedNotification):
            UPDATED.append(str(root.params.uri))
            if UPDATE_SEEN is not None:
                UPDATE_SEEN.set()

PROMOTION = {
    "action": {"type": "launch_promotion", "target": {"category": "earbuds"}, "discount_bp": 1500,
               "starts_at_ms": 0, "ends_at_ms": 0},
    "reasoning": "earbuds weekend: 15 % off the category",
    "impact": {"revenue_minor": 300000, "margin_minor": 60000},
    "objective": "sales-growth",
}


def text_of(result):
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def exercise(session: ClientSession) -> dict:
    seen = {}
    init = await session.initialize()
    seen["server"] = init.serverInfo.name
    seen["protocol"] = init.protocolVersion
    await session.send_ping()

    tools = (await session.list_tools()).tools
    seen["tools"] = sorted(t.name for t in tools)
    announce = next(t for t in tools if t.name == "announce_intention")
    seen["announce_has_output_schema"] = bool(announce.outputSchema)
    seen["resources"] = sorted(str(r.uri) for r in (await session.list_resources()).resources)
    seen["templates"] = sorted(t.uriTemplate for t in (await session.list_resource_templates()).resourceTemplates)
    rules = await session.read_resource("parley://rules")
    seen["rules_in_force"] = "min_margin_bp" in rules.contents[0].text
    sku = await session.read_resource("parley://sku/E2")
    seen["e2_price"] = json.loads(sku.contents[0].text)["sku"]["price_minor"]["value"]

    # Dates for the promotion from the ledger's own clock.
    ctx = await session.call_tool("get_context", {})
    now = ctx.structuredContent["at_ms"]
    promo = json.loads(json.dumps(PROMOTION))
    promo["action"]["starts_at_ms"] = now + 24 * 3600_000
    promo["action"]["ends_at_ms"] = now + 72 * 3600_000

    # A conflicting intention: parley answers with the decision.
    result = await session.call_tool("announce_intention", promo)
    assert not result.isError, text_of(result)
    answer = result.structuredContent
    seen["intention_seq"] = answer["seq"]
    seen["decision_seq"] = answer["decision"]["seq"]
    seen["outcome"] = answer["decision"]["outcome"]["kind"]
    seen["rule"] = answer["decision"]["rule"]

    explained = await session.call_tool("explain_decision", {"seq": answer["seq"]})
    assert not explained.isError, text_of(explained)
    seen["explained_rule"] = explained.structuredContent["rule"]
    seen["explanation"] = explained.structuredContent["summary"]

    entity = await session.call_tool("get_entity", {"entity": "sku:E2"})
    seen["entity_kind"] = entity.structuredContent["entity"]["kind"]

    # The scorecard's structured output is checked against its output schema
    # by the SDK.
    card = await session.call_tool("scorecard", {"from": "2020-01-01"})
    assert not card.isError, text_of(card)
    seen["scorecard_seq"] = card.structuredContent["ledger_seq"]

    # Refusals: another agent's identity, a human-only tool.
    other = dict(promo, agent="pricing")
    refused = await session.call_tool("announce_intention", other)
    seen["other_identity_refused"] = bool(refused.isError)
    seen["other_identity_message"] = text_of(refused)
    human = await session.call_tool("resolve_escalation", {"escalation": answer["seq"], "option": 0, "rationale": "me"})
    seen["human_only_refused"] = bool(human.isError)
    seen["human_only_message"] = text_of(human)

    # Subscriptions (Streamable HTTP): a fact about E2 updates parley://sku/E2.
    seen["subscribed"] = False
    try:
        await session.subscribe_resource("parley://sku/E2")
        seen["subscribed"] = True
    except Exception as e:  # stdio has no feed to follow: refused with a reason
        seen["subscribe_refusal"] = str(e)
    fact = await session.call_tool("publish_fact", {"entity": "sku:E2", "attribute": "colour", "value": "black"})
    assert not fact.isError, text_of(fact)
    seen["fact_seq"] = fact.structuredContent["seq"]
    if seen["subscribed"]:
        # Wait for the event, not for a duration: the bound only keeps a
        # broken server from hanging the suite.
        try:
            await asyncio.wait_for(UPDATE_SEEN.wait(), timeout=300)
        except asyncio.TimeoutError:
            pass
    seen["updated"] = sorted(set(UPDATED))
    return seen


async def main():
    global UPDATE_SEEN
    UPDATE_SEEN = asyncio.Event()
    mode = sys.argv[1]
    if mode == "http":
        url, token = sys.argv[2], sys.argv[3]
        headers = {"Authorization": f"Bearer {token}"}
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write, message_handler=on_message) as session:
                seen = await exercise(session)
    elif mode == "stdio":
        binary, server = sys.argv[2], sys.argv[3]
        params = StdioServerParameters(command=binary, args=["mcp", "--server", server], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                seen = await exercise(session)
    else:
        sys.exit(f"unknown mode {mode!r}")
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
