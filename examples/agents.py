#!/usr/bin/env python3
"""Three store agents as separate processes, coordinating through `parley serve`.

Python standard library only. Run it next to a server:

    parley serve --data /tmp/store &                      # terminal 1
    parley token create --data /tmp/store --name admin --role admin   # before serve
    python3 examples/agents.py --server http://127.0.0.1:7420 --admin-token pk_...

What happens (the seed's conflict: a price match meets a planned promotion):

1. This process (the store's admin) registers the agents, puts three earbuds
   in the catalog, grants each agent a token, and starts the pricing,
   marketing and customer-service agents as separate processes. Each one
   follows the ledger's live stream (`GET /v1/stream`) and acts only on
   decisions parley gives it.
2. competitor-tracking reports a rival's 10 % cut on E2. The pricing agent
   sees it on the stream, announces a price match and, once approved,
   applies it.
3. The admin broadcasts that the weekend campaign is being planned. The
   marketing agent announces 15 % off the whole earbuds category. parley
   rejects it (guard.margin): with the matched price, E2 would sell below
   cost. Marketing reacts to the rejection: it announces the promotion on
   the skus the decision says keep the margin, which is approved.
4. Customer service follows the decisions on promotions and prepares answers
   for the approved one.

The run ends with the same decisions as the conflict in `parley demo`, and
exits 0 only if every step was decided as expected.

With `--shopify-secret S` (the server started with `--webhooks-as store-sync`
and the same secret in PARLEY_SHOPIFY_SECRET), the earbuds come from the
store's platform instead: signed Shopify `products/create` and
`inventory_items/update` deliveries (price; cost), and the run also checks
that pricing's decision read E2's cost from the record the webhook wrote.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

AGENTS = {
    "merchandising": ("merchandising", 45),
    "pricing": ("pricing", 50),
    "marketing": ("marketing", 40),
    "customer-service": ("customer-service", 30),
    "competitor-tracking": ("competitor-tracking", 20),
}
# sku: (price, cost) in pence; cost is 80 % of the price, as in `parley demo`.
EARBUDS = {"E1": (8999, 7199), "E2": (5999, 4799), "E3": (12999, 10399)}
HOUR_MS = 3_600_000


class Api:
    """One keep-alive connection to the server, as one identity."""

    def __init__(self, server, token):
        url = urllib.parse.urlsplit(server)
        if url.scheme != "http" or not url.hostname:
            sys.exit(f"--server must look like http://127.0.0.1:7420, not {server!r}")
        self.host, self.port, self.token = url.hostname, url.port or 80, token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        for attempt in range(5):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                text = res.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                time.sleep(0.2)
                continue
            if res.status in (429, 503):  # over quota, busy, or outcome unknown: wait as told
                # Safe to send again: every command carries an idempotency key
                # (see post), so a command whose outcome was unknown is appended
                # at most once, and the retry's answer says whether it was.
                time.sleep(float(res.getheader("Retry-After", "1")))
                continue
            answer = json.loads(text) if text else None
            if res.status >= 400:
                raise RuntimeError(f"{method} {path}: {res.status} {answer}")
            return answer
        raise RuntimeError(f"{method} {path}: no answer after retries")

    def post(self, command):
        # A key of its own for every command, so any retry is safe.
        command = {"idempotency_key": f"{command['producer']}-{uuid.uuid4().hex}", **command}
        return self.call("POST", "/v1/commands", command)

    def stream(self, query):
        """Yields (seq, kind, record) from the live stream, reconnecting with
        Last-Event-ID when the server asks (a `resume` event) or drops."""
        last = None
        while True:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            conn.request("GET", "/v1/stream?" + urllib.parse.urlencode(query), headers=headers)
            res = conn.getresponse()
            if res.status != 200:
                raise RuntimeError(f"stream: {res.status} {res.read()!r}")
            event, data, ident = None, [], None
            for raw in res:
                line = raw.decode().rstrip("\n").rstrip("\r")
                if line.startswith(":"):
                    continue  # a heartbeat
                if line == "":
                    if event == "resume":
                        break
                    if event and data:
                        if ident is not None:
                            last = ident
                        yield ident, event, json.loads("\n".join(data))
                    event, data, ident = None, [], None
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line.startswith("id: "):
                    ident = int(line[4:])
            conn.close()
            time.sleep(0.2)


def say(who, text):
    print(f"{who:<17} {text}", flush=True)


def pounds(minor):
    return f"£{minor // 100}.{minor % 100:02d}"


def intention(agent, action, reasoning, revenue, margin, objective="sales-growth"):
    return {
        "producer": agent,
        "kind": "intend",
        "intention": {
            "action": action,
            "reasoning": reasoning,
            "impact": {"revenue_minor": revenue, "margin_minor": margin},
            "objective": objective,
        },
    }


def outcome(answer):
    d = answer["decision"]
    return d["outcome"]["kind"], d["rule"], d["summary"]


def final_decision(api, seq):
    """The intention's decision once settled (a deferral waits for the next)."""
    while True:
        got = api.call("GET", f"/v1/intentions/{seq}?wait_ms=10000")
        if got["settled"]:
            d = got["decisions"][-1]["body"]["decision"]
            return d["outcome"]["kind"], d["rule"]


# ---------------------------------------------------------------- agents --

def pricing_agent(api, start):
    """Matches a rival's lower price, acting only on approval."""
    prices = {}
    for seq, kind, r in api.stream({"from": start}):
        body = r["body"]
        if kind == "catalog":
            prices[body["sku"]] = body["price_minor"]
        elif kind == "synced" and body["synced"]["object"]["type"] == "product":
            for v in body["synced"]["object"]["variants"]:
                prices[v["sku"]] = v["price_minor"]
        elif kind == "competitor_price":
            sku, rival = body["sku"], body["price_minor"]
            if rival >= prices.get(sku, 0):
                continue
            cut = prices[sku] - rival
            answer = api.post(intention(
                "pricing", {"type": "set_price", "sku": sku, "price_minor": rival},
                f"rival cut {sku} to {pounds(rival)}; match it to hold share",
                -cut * 80, -cut * 80))
            state, rule, summary = outcome(answer)
            say("pricing", f"#{answer['seq']} set {sku} to {pounds(rival)}: {summary}")
            if state in ("deferred", "escalated"):
                state, rule = final_decision(api, answer["seq"])
            if state in ("approved", "modified"):
                say("pricing", f"applied: {sku} now sells at {pounds(rival)} (rule {rule})")
                print(json.dumps({"agent": "pricing", "outcome": state, "rule": rule}), flush=True)
                return


def passing_skus(decision):
    for step in decision["trace"]:
        finding = step.get("finding", {})
        if finding.get("passing"):
            return finding["passing"]
    return []


def marketing_agent(api, start):
    """Plans the weekend promotion; when parley refuses it for margin, narrows
    it to the skus the decision names as safe."""
    for seq, kind, r in api.stream({"from": start, "kind": "broadcast", "topic": "weekend_planning"}):
        now = api.call("GET", "/v1/state")["at_ms"]
        window = (now + 24 * HOUR_MS, now + 72 * HOUR_MS)
        target = {"category": "earbuds"}
        results = []
        for _ in range(2):
            answer = api.post(intention(
                "marketing",
                {"type": "launch_promotion", "target": target, "discount_bp": 1500,
                 "starts_at_ms": window[0], "ends_at_ms": window[1]},
                "earbuds weekend: 15 % off from tomorrow", 300_000, 60_000))
            state, rule, summary = outcome(answer)
            what = f"category {target['category']}" if "category" in target else ", ".join(target["skus"])
            say("marketing", f"#{answer['seq']} 15 % off {what}: {summary}")
            results.append({"outcome": state, "rule": rule})
            safe = passing_skus(answer["decision"])
            if state != "rejected" or not safe:
                break
            target = {"skus": safe}
            say("marketing", f"reacting: the same promotion on {', '.join(safe)} only")
        print(json.dumps({"agent": "marketing", "decisions": results}), flush=True)
        return


def customer_service_agent(api, start):
    """Prepares answers for every promotion parley approves."""
    intents = {}
    for seq, kind, r in api.stream({"from": start}):
        body = r["body"]
        if kind == "intend" and body["intention"]["action"]["type"] == "launch_promotion":
            intents[seq] = body["intention"]["action"]
        elif kind == "decision" and body["decision"]["intention"] in intents:
            d = body["decision"]
            if d["outcome"]["kind"] != "approved":
                say("customer-service", f"noted: promotion #{d['intention']} was {d['outcome']['kind']}")
                continue
            action = intents[d["intention"]]
            skus = action["target"].get("skus") or [action["target"].get("category")]
            answer = api.post(intention(
                "customer-service",
                {"type": "generic", "entity": f"campaign:promo-{d['intention']}",
                 "attribute": "support_answers", "value": f"15 % off {', '.join(skus)} this weekend"},
                "customers will ask about the promotion; answers ready", 0, 0,
                "customer-experience"))
            state, rule, summary = outcome(answer)
            say("customer-service", f"#{answer['seq']} prepare answers: {summary}")
            print(json.dumps({"agent": "customer-service", "outcome": state, "rule": rule}), flush=True)
            return


RUNNERS = {"pricing": pricing_agent, "marketing": marketing_agent,
           "customer-service": customer_service_agent}


def run_agent(name):
    api = Api(os.environ["PARLEY_SERVER"], os.environ["PARLEY_TOKEN"])
    start = int(os.environ["PARLEY_FROM"])
    print("ready", flush=True)
    RUNNERS[name](api, start)


# ----------------------------------------------------------------- admin --

def setup(server, admin, admin_name, shopify_secret=None):
    """Registers the agents and grants their tokens; then the earbuds are
    listed by merchandising (whose domain the catalog is), or by the store's
    platform through signed webhooks. Returns the tokens and the seq the
    catalog starts at."""
    agents = dict(AGENTS)
    if shopify_secret:
        agents["store-sync"] = ("integration", 10)
    for agent, (domain, priority) in agents.items():
        admin.post({"producer": admin_name, "kind": "agent_registered",
                    "idempotency_key": f"register-{agent}",
                    "profile": {"agent": agent, "domain": domain, "priority": priority}})
    tokens = {a: admin.call("POST", "/v1/tokens", {"name": a, "role": "agent"})["token"] for a in AGENTS}
    start = admin.call("GET", "/v1/state")["seq"] + 1
    if shopify_secret:
        for n, (sku, (price, cost)) in enumerate(EARBUDS.items()):
            product = {"id": 100 + n, "product_type": "earbuds", "status": "active",
                       "updated_at": "2026-11-01T09:00:00Z",
                       "variants": [{"sku": sku, "price": pounds(price)[1:], "inventory_item_id": 500 + n,
                                     "inventory_quantity": 120}]}
            item = {"id": 500 + n, "sku": sku, "cost": pounds(cost)[1:], "updated_at": "2026-11-01T09:00:00Z"}
            webhook(server, shopify_secret, "products/create", f"p-{sku}", product)
            webhook(server, shopify_secret, "inventory_items/update", f"i-{sku}", item)
        return tokens, start
    merchandising = Api(server, tokens["merchandising"])
    for sku, (price, cost) in EARBUDS.items():
        merchandising.post({"producer": "merchandising", "kind": "catalog",
                            "idempotency_key": f"catalog-{sku}", "sku": sku, "category": "earbuds",
                            "cost_minor": cost, "price_minor": price, "stock": 120,
                            "lifecycle": "active"})
    return tokens, start


def webhook(server, secret, topic, delivery, payload):
    """Posts one delivery signed as Shopify signs it (HMAC-SHA256, base64)."""
    body = json.dumps(payload).encode()
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    url = urllib.parse.urlsplit(server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.request("POST", "/v1/webhooks/shopify", body=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": delivery, "X-Shopify-Hmac-Sha256": sig})
    res = conn.getresponse()
    answer = json.loads(res.read() or b"null")
    conn.close()
    if res.status != 200 or answer["result"] != "applied":
        raise RuntimeError(f"webhook {topic}: {res.status} {answer}")
    return answer


def cites_webhook(admin):
    """Whether pricing's decision on E2 read E2's cost from a synced record."""
    synced = {r["seq"] for r in admin.call("GET", "/v1/records?kind=synced")["records"]}
    decisions = admin.call("GET", "/v1/records?kind=decision&entity=sku:E2")["records"]
    reads = [read for d in decisions for step in d["body"]["decision"]["trace"] for read in step.get("reads", [])]
    cited = [r["seq"] for r in reads if r.get("entity") == "sku:E2" and r.get("field") == "cost_minor"]
    return bool(cited) and all(seq in synced for seq in cited), cited


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default=os.environ.get("PARLEY_SERVER", "http://127.0.0.1:7420"))
    p.add_argument("--admin-token", default=os.environ.get("PARLEY_ADMIN_TOKEN"))
    p.add_argument("--shopify-secret", default=None,
                   help="list the earbuds through signed Shopify webhooks (the server's --webhooks-as store-sync secret)")
    p.add_argument("--agent", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.agent:
        return run_agent(args.agent)
    if not args.admin_token:
        sys.exit("give --admin-token (or PARLEY_ADMIN_TOKEN): an admin's token from `parley token create`")
    admin = Api(args.server, args.admin_token)
    state = admin.call("GET", "/v1/state")
    admin_name = next((a["name"] for a in state["admins"]), None)
    if admin_name is None:
        sys.exit("the ledger has no admin")
    # The agents follow the stream from the catalog on (pricing learns its
    # prices from it).
    tokens, start = setup(args.server, admin, admin_name, args.shopify_secret)
    source = "Shopify webhooks" if args.shopify_secret else "merchandising"
    say("admin", f"set up 3 earbuds (from {source}) and {len(AGENTS)} agents; the agents follow the stream from seq {start}")
    procs = {}
    for name in RUNNERS:
        env = dict(os.environ, PARLEY_SERVER=args.server, PARLEY_TOKEN=tokens[name], PARLEY_FROM=str(start))
        procs[name] = subprocess.Popen([sys.executable, __file__, "--agent", name], env=env,
                                       stdout=subprocess.PIPE, text=True)
        if procs[name].stdout.readline().strip() != "ready":
            sys.exit(f"the {name} agent did not start")
    rival = Api(args.server, tokens["competitor-tracking"])
    rival.post({"producer": "competitor-tracking", "kind": "competitor_price",
                "sku": "E2", "competitor": "rival", "price_minor": 5399})
    say("competitor-tracking", "rival now sells E2 at £53.99 (10 % below ours)")
    results = {}
    results["pricing"] = collect(procs["pricing"])
    admin.post({"producer": admin_name, "kind": "broadcast", "topic": "weekend_planning",
                "entity": "category:earbuds"})
    say("admin", "broadcast: the earbuds weekend campaign is being planned")
    results["marketing"] = collect(procs["marketing"])
    results["customer-service"] = collect(procs["customer-service"])
    expected = {
        "pricing": {"agent": "pricing", "outcome": "approved", "rule": "approve"},
        "marketing": {"agent": "marketing", "decisions": [
            {"outcome": "rejected", "rule": "guard.margin"},
            {"outcome": "approved", "rule": "approve"}]},
        "customer-service": {"agent": "customer-service", "outcome": "approved", "rule": "approve"},
    }
    if results != expected:
        print(f"UNEXPECTED: {json.dumps(results)}", flush=True)
        return 1
    if args.shopify_secret:
        ok, cited = cites_webhook(admin)
        if not ok:
            print(f"UNEXPECTED: pricing's decision on E2 read its cost from {cited}, not a webhook's record", flush=True)
            return 1
        say("admin", f"pricing's decision read E2's cost from the Shopify webhook's record #{cited[0]}")
    print("price war decided as in `parley demo`: the match approved, the 15 % category "
          "promotion rejected by guard.margin, the promotion on the skus that keep the margin approved",
          flush=True)
    return 0


def collect(proc):
    """Echoes an agent's lines until its JSON result; waits for it to exit."""
    result = None
    for line in proc.stdout:
        if line.startswith("{"):
            result = json.loads(line)
        else:
            print(line, end="", flush=True)
    if proc.wait(timeout=60) != 0:
        sys.exit("an agent failed")
    return result


if __name__ == "__main__":
    sys.exit(main())
