#!/usr/bin/env python3
"""verify.py — an independent verifier of a Veltrix hunt's public log.

    python3 tests/fairness/verify.py FILE [--seed HEX] [--hunt ID]

Written from docs/FAIRNESS.md alone (not from the server's code), with the Python standard
library only, so that a third party can read it next to that document. FILE holds JSON
lines, one event object of GET /v1/hunts/{hunt}/log per line, from seq 1 (FAIRNESS.md §1).
For each event, in order: its seq follows the previous one, its hash is the chain's (§3,
§4), and it holds against the rules (§5) and, when the seed is known, the draw (§6).
Exit 0 with a summary; 1 at the first event that does not hold, printing "FAIL seq N:
reason"; 2 when the input cannot be read (§7).

--seed HEX gives the 32-byte seed of a hunt whose seed the log does not reveal yet.
--hunt ID is needed only to check the draws of a legacy (rule 0) hunt: its draw hashes the
hunt id, which no event object carries (see the report of FAIRNESS.md's open points).

Invariants: every check reads only the state left by the events before the one checked;
the state changes only after the event held (Audit.check, then Audit.apply).
"""
import argparse
import bisect
import datetime
import hashlib
import hmac
import json
import re
import sys

TYPE_CODES = {"hunt_updated": 1, "scan": 2, "item_collected": 3, "chest_opened": 4,
              "map_published": 5}
# the fields each type must carry (besides seq, type, at, hash): name -> Python type
FIELDS = {"hunt_updated": {"draw_rule": int, "definition_sha256": str},
          "scan": {"player": str, "code": str, "points": int},
          "item_collected": {"player": str, "item": str},
          "chest_opened": {"player": str, "zone": str, "chest": str, "points": int, "loot": list},
          "map_published": {"version": int}}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX64 = re.compile(r"[0-9a-f]{64}")
AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
DECIMAL = re.compile(r"0|[1-9][0-9]*")
MASK64 = (1 << 64) - 1


class Unreadable(Exception):
    """The input cannot be read: exit status 2."""


class Fail(Exception):
    """An event does not hold: exit status 1."""


# ------------------------------------------------------------------ reading (§1, §2)
def field(ev, name, kind, where):
    v = ev.get(name)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise Unreadable("%s: field %r missing or not a %s" % (where, name, kind.__name__))
    return v


def time_ms(text, where):
    """RFC 3339 -> milliseconds since the epoch (floor); Unreadable when it is not one."""
    try:
        t = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise Unreadable("%s: not an RFC 3339 time: %r" % (where, text))
    if t.tzinfo is None:
        raise Unreadable("%s: time without a zone: %r" % (where, text))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (t - epoch) // datetime.timedelta(milliseconds=1)


def read_event(line, lineno):
    """One line -> the event object, its fields checked for presence and type."""
    where = "line %d" % lineno
    try:
        ev = json.loads(line)
    except ValueError as e:
        raise Unreadable("%s: not JSON (%s)" % (where, e))
    if not isinstance(ev, dict):
        raise Unreadable("%s: not a JSON object" % where)
    seq = field(ev, "seq", int, where)
    where = "line %d (seq %d)" % (lineno, seq)
    typ = field(ev, "type", str, where)
    if typ not in TYPE_CODES:
        raise Unreadable("%s: unknown type %r" % (where, typ))
    if not AT.fullmatch(field(ev, "at", str, where)):
        raise Unreadable("%s: 'at' is not YYYY-MM-DDTHH:MM:SS.mmmZ: %r" % (where, ev["at"]))
    ev["at_ms"] = time_ms(ev["at"], where)
    if not HEX64.fullmatch(field(ev, "hash", str, where)):
        raise Unreadable("%s: 'hash' is not 64 lowercase hex" % where)
    for name, kind in FIELDS[typ].items():
        field(ev, name, kind, where)
    if "player" in ev and not UUID.fullmatch(ev["player"]):
        raise Unreadable("%s: 'player' is not a canonical UUID: %r" % (where, ev["player"]))
    if typ == "hunt_updated" and not HEX64.fullmatch(ev["definition_sha256"]):
        raise Unreadable("%s: 'definition_sha256' is not 64 lowercase hex" % where)
    return ev


# ------------------------------------------------------------------ the chain (§3, §4)
def canonical(ev):
    """The bytes the hash covers (§3)."""
    typ = ev["type"]
    player = bytes.fromhex(ev["player"].replace("-", "")) if "player" in ev else bytes(16)
    if typ == "scan":
        p = ev["code"].encode()
    elif typ == "item_collected":
        p = ev["item"].encode()
    elif typ == "chest_opened":
        p = ev["zone"].encode() + b"\0" + ev["chest"].encode()
    elif typ == "map_published":
        p = str(ev["version"]).encode()
    else:
        p = bytes([ev["draw_rule"] & 0xff]) + bytes.fromhex(ev["definition_sha256"])
    return (b"VXEV1" + ev["seq"].to_bytes(8, "big") + ev["at_ms"].to_bytes(8, "big", signed=True)
            + bytes([TYPE_CODES[typ]]) + player + len(p).to_bytes(4, "big") + p)


def chain(prev, ev):
    """hash(n) from hash(n-1) (or H0) and event n."""
    return hashlib.sha256(prev + canonical(ev)).digest()


# ------------------------------------------------------------------ the draw (§6)
def draw_rule1(seed, zone, player, opened, n):
    msg = (b"veltrix-draw-v1" + bytes([len(zone.encode())]) + zone.encode() + player
           + opened.to_bytes(8, "big") + n.to_bytes(8, "big"))
    x = int.from_bytes(hmac.new(seed, msg, hashlib.sha256).digest()[:8], "big")
    return (x * n) >> 64


def draw_rule0(hunt, zone, player, n):
    s = 0xcbf29ce484222325
    for b in hunt.encode() + b"\0" + zone.encode() + b"\0" + player:
        s = ((s ^ b) * 0x100000001b3) & MASK64
    z = ((s ^ n) + 0x9e3779b97f4a7c15) & MASK64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
    return (z ^ (z >> 31)) % n


# ------------------------------------------------------------------ a zone's chests (§5)
class Pool:
    """The slots of one pool: explicit chests [(id, points, loot)], then maybe a range.
    Opened range chests are kept as a sorted list of indices."""

    def __init__(self, requires):
        self.requires, self.explicit, self.range = requires, [], None
        self.opened_explicit, self.opened_range = set(), []

    def closed(self):
        n_range = self.range["count"] - len(self.opened_range) if self.range else 0
        return len(self.explicit) - len(self.opened_explicit) + n_range

    def kth_closed(self, k):
        for cid, _, _ in self.explicit:
            if cid not in self.opened_explicit:
                if k == 0:
                    return cid
                k -= 1
        lo, hi = 0, self.range["count"] - 1   # smallest i with k+1 closed range chests <= i
        while lo < hi:
            mid = (lo + hi) // 2
            if mid + 1 - bisect.bisect_right(self.opened_range, mid) >= k + 1:
                hi = mid
            else:
                lo = mid + 1
        return self.range["prefix"] + str(lo)


def range_index(rng, cid):
    """The index of chest id cid in a chest_range, or None."""
    rest = cid[len(rng["prefix"]):] if cid.startswith(rng["prefix"]) else ""
    if not DECIMAL.fullmatch(rest) or int(rest) >= rng["count"]:
        return None
    return int(rest)


def get(e, name, kind, default=None):
    """e[name] when it is a kind ("ids": a list of strings), or default when absent; else
    Unreadable. Only "requires" may be absent without a default."""
    v = e.get(name, default) if isinstance(e, dict) else None
    if kind == "ids":
        ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
    else:
        ok = isinstance(v, kind) and not isinstance(v, bool)
    if not ok and not (name == "requires" and v is None):
        raise Unreadable("a definition's %r is missing or of the wrong type in %s"
                         % (name, json.dumps(e)[:200]))
    return v


class Zone:
    def __init__(self, z):
        chests, rng = get(z, "chests", list, []), z.get("chest_range")
        self.where = {}  # explicit chest id -> (pool, points, loot)
        slots = [(get(c, "id", str), get(c, "points", int, 0), get(c, "loot", "ids", []),
                  get(c, "requires", str)) for c in chests]
        if rng is not None:
            self.rng = {"prefix": get(rng, "prefix", str), "count": get(rng, "count", int),
                        "points": get(rng, "points", int, 0), "loot": get(rng, "loot", "ids", []),
                        "requires": get(rng, "requires", str)}
        else:
            self.rng = None
        reqs = {s[3] for s in slots} | ({self.rng["requires"]} if self.rng else set())
        self.pools = [Pool(r) for r in sorted(reqs, key=lambda r: (r is not None, (r or "").encode()))]
        by_req = {p.requires: p for p in self.pools}
        for cid, points, loot, requires in slots:
            by_req[requires].explicit.append((cid, points, loot))
            self.where[cid] = (by_req[requires], points, loot)
        if self.rng:
            by_req[self.rng["requires"]].range = self.rng

    def find(self, cid):
        """(pool, points, loot, range index or None) of chest cid, or None."""
        if cid in self.where:
            return self.where[cid] + (None,)
        i = range_index(self.rng, cid) if self.rng else None
        if i is not None:
            pool = next(p for p in self.pools if p.range is self.rng)
            return pool, self.rng["points"], self.rng["loot"], i
        return None

    def mark_opened(self, cid):
        pool, _, _, i = self.find(cid)
        if i is None:
            pool.opened_explicit.add(cid)
        else:
            bisect.insort(pool.opened_range, i)


# ------------------------------------------------------------------ the audit (§5, §6)
class Player:
    def __init__(self):
        self.score, self.set_seq, self.ranked = 0, None, False
        self.scanned, self.collected, self.inventory = set(), set(), {}


class Audit:
    """The state of §5 and the checks of every event against it."""

    def __init__(self, seed=None, hunt=None):
        self.given_seed, self.hunt = seed, hunt
        self.seed, self.rule, self.prev = None, None, None
        self.codes, self.items, self.zones, self.window = {}, {}, {}, (None, None)
        self.players, self.collected, self.owner = {}, {}, {}  # owner: (zone, chest) -> player
        self.map_version, self.draws, self.events = None, 0, 0
        self.opened_in = {}  # zone id -> how many of its chests were opened

    # -- the first event: commitment, seed, H0
    def start(self, ev):
        if ev["type"] != "hunt_updated" or "seed_commitment" not in ev:
            raise Fail("the first event must be a hunt_updated with a seed_commitment")
        cm, rule = ev["seed_commitment"], ev["draw_rule"]
        if cm is not None and not (isinstance(cm, str) and HEX64.fullmatch(cm)):
            raise Unreadable("seq 1: seed_commitment is not 64 lowercase hex or null")
        if (rule, cm is None) not in ((1, False), (0, True)):
            raise Fail("draw_rule %d with seed_commitment %s" % (rule, cm))
        seeds = [s for s in (ev.get("seed"), self.given_seed) if s is not None]
        for s in seeds:
            if not (isinstance(s, str) and HEX64.fullmatch(s)) or cm is None or \
                    hashlib.sha256(bytes.fromhex(s)).hexdigest() != cm:
                raise Fail("the seed %s does not hash to the seed_commitment %s" % (s, cm))
        self.rule, self.seed = rule, bytes.fromhex(seeds[0]) if seeds else None
        self.prev = bytes.fromhex(cm) if cm else bytes(32)

    # -- the definition
    def install(self, ev):
        text = ev.get("definition_text")
        if text is not None:
            if not isinstance(text, str):
                raise Unreadable("seq %d: definition_text is not a string" % ev["seq"])
            if hashlib.sha256(text.encode()).hexdigest() != ev["definition_sha256"]:
                raise Fail("SHA-256 of definition_text is not definition_sha256")
            try:
                d = json.loads(text)
            except ValueError:
                raise Fail("definition_text is not JSON")
        else:
            d = ev.get("definition")
        if not isinstance(d, dict):
            raise Unreadable("seq %d: no definition object" % ev["seq"])
        self.codes = {get(c, "id", str): get(c, "points", int, 0) for c in get(d, "codes", list, [])}
        self.items = {get(i, "id", str): get(i, "quantity", int, 1) for i in get(d, "items", list, [])}
        self.zones = {get(z, "id", str): Zone(z) for z in get(d, "zones", list, [])}
        self.window = tuple(time_ms(d[k], "seq %d: %s" % (ev["seq"], k)) if d.get(k) is not None else None
                            for k in ("starts_at", "ends_at"))
        for (zone, cid) in self.owner:
            z = self.zones.get(zone)
            if z is None or z.find(cid) is None:
                raise Fail("the update removes chest %s/%s, which was opened" % (zone, cid))
            z.mark_opened(cid)

    # -- the draw: the chest the rule gives, or None when it cannot be checked
    @staticmethod
    def eligible(z, inv):
        """The player's eligible pools of zone z (§6) and n, their closed chests."""
        pools = [p for p in z.pools if p.requires is None or inv.get(p.requires, 0) >= 1]
        return pools, sum(p.closed() for p in pools)

    def drawn(self, zone_id, z, player_id, inv):
        pools, n = self.eligible(z, inv)
        opened = self.opened_in.get(zone_id, 0)
        pid = bytes.fromhex(player_id.replace("-", ""))
        if self.rule == 1 and self.seed is not None:
            k = draw_rule1(self.seed, zone_id, pid, opened, n)
        elif self.rule == 0 and self.hunt is not None:
            k = draw_rule0(self.hunt, zone_id, pid, n)
        else:
            return None
        for p in pools:
            if k < p.closed():
                return p.kth_closed(k)
            k -= p.closed()

    # -- the rules of one event against the state before it
    def check(self, ev):
        typ, t = ev["type"], ev["at_ms"]
        if typ in ("hunt_updated", "map_published"):
            if typ == "hunt_updated" and ev["seq"] > 1 and (
                    ev["draw_rule"] != 0 or "seed_commitment" in ev or "seed" in ev):
                raise Fail("a later hunt_updated must have draw_rule 0 and no seed_commitment or seed")
            if typ == "map_published" and not (ev["version"] >= 0 and (
                    self.map_version is None or ev["version"] > self.map_version)):
                raise Fail("map version %d is not above %s" % (ev["version"], self.map_version))
            return
        lo, hi = self.window
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            raise Fail("at %s is outside starts_at..ends_at" % ev["at"])
        pl = self.players.get(ev["player"]) or Player()
        getattr(self, "check_" + typ)(ev, pl)

    def check_scan(self, ev, pl):
        if ev["code"] not in self.codes:
            raise Fail("code %r is not in the definition" % ev["code"])
        if ev["code"] in pl.scanned:
            raise Fail("player %s scanned code %r before" % (ev["player"], ev["code"]))
        if ev["points"] != self.codes[ev["code"]]:
            raise Fail("points %d, the code gives %d" % (ev["points"], self.codes[ev["code"]]))

    def check_item_collected(self, ev, pl):
        item = ev["item"]
        if item not in self.items:
            raise Fail("item %r is not in the definition" % item)
        if item in pl.collected:
            raise Fail("player %s collected item %r before" % (ev["player"], item))
        if self.collected.get(item, 0) >= self.items[item]:
            raise Fail("item %r: all %d were collected already" % (item, self.items[item]))

    def check_chest_opened(self, ev, pl):
        z = self.zones.get(ev["zone"])
        found = z.find(ev["chest"]) if z else None
        if found is None:
            raise Fail("zone %r has no chest %r" % (ev["zone"], ev["chest"]))
        pool, points, loot, _ = found
        if (ev["zone"], ev["chest"]) in self.owner:
            raise Fail("chest %s/%s was opened at seq %d already" % (
                ev["zone"], ev["chest"], self.owner[(ev["zone"], ev["chest"])][1]))
        if pool.requires is not None and pl.inventory.get(pool.requires, 0) < 1:
            raise Fail("chest %r requires item %r, which the player does not hold" % (ev["chest"], pool.requires))
        want = self.drawn(ev["zone"], z, ev["player"], pl.inventory)
        if want is not None and want != ev["chest"]:
            raise Fail("the draw gives chest %r, not %r" % (want, ev["chest"]))
        if ev["points"] != points or ev["loot"] != loot:
            raise Fail("points %d loot %s, the chest gives %d %s" % (ev["points"], ev["loot"], points, loot))
        self.draws += want is not None

    # -- the state after an event that held
    def apply(self, ev):
        typ = ev["type"]
        if typ == "hunt_updated":
            self.install(ev)
            return
        if typ == "map_published":
            self.map_version = ev["version"]
            return
        pl = self.players.setdefault(ev["player"], Player())
        if typ == "item_collected":
            pl.collected.add(ev["item"])
            pl.inventory[ev["item"]] = pl.inventory.get(ev["item"], 0) + 1
            self.collected[ev["item"]] = self.collected.get(ev["item"], 0) + 1
            return
        if typ == "scan":
            pl.scanned.add(ev["code"])
        else:
            z = self.zones[ev["zone"]]
            pool = z.find(ev["chest"])[0]
            if pool.requires is not None:
                pl.inventory[pool.requires] -= 1
            for item in ev["loot"]:
                pl.inventory[item] = pl.inventory.get(item, 0) + 1
            z.mark_opened(ev["chest"])
            self.owner[(ev["zone"], ev["chest"])] = (ev["player"], ev["seq"])
            self.opened_in[ev["zone"]] = self.opened_in.get(ev["zone"], 0) + 1
        pl.score += ev["points"]
        if not pl.ranked or ev["points"] > 0:
            pl.ranked, pl.set_seq = True, ev["seq"]

    # -- one event: seq, hash, rules, then the new state
    def step(self, ev):
        want_seq = self.events + 1
        if ev["seq"] != want_seq:
            raise Fail("seq %d where seq %d was due" % (ev["seq"], want_seq))
        if want_seq == 1:
            self.start(ev)
        h = chain(self.prev, ev)
        if h.hex() != ev["hash"]:
            raise Fail("hash %s, the chain gives %s" % (ev["hash"], h.hex()))
        self.check(ev)
        self.apply(ev)
        self.prev, self.events = h, want_seq

    def ranking(self):
        ranked = [(p.score, p.set_seq, pid) for pid, p in self.players.items() if p.ranked]
        return sorted(ranked, key=lambda r: (-r[0], r[1]))


def verify(lines, seed=None, hunt=None):
    """Checks an iterable of lines; returns the Audit. Raises Fail (with .seq) or Unreadable."""
    a = Audit(seed, hunt)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise Unreadable("line %d: empty" % lineno)
        ev = read_event(line, lineno)
        try:
            a.step(ev)
        except Fail as e:
            e.seq = ev["seq"]
            raise
    if a.events == 0:
        raise Unreadable("no events")
    return a


def summary(a):
    top = a.ranking()
    if a.seed is not None or (a.rule == 0 and a.hunt is not None):
        draws = "%d checked (rule %d)" % (a.draws, a.rule)
    else:
        draws = "not checked (%s)" % ("no seed" if a.rule == 1 else "rule 0 needs --hunt")
    out = ["ok: %d events, %d players (%d ranked), %d chests opened, draws %s"
           % (a.events, len(a.players), len(top), len(a.owner), draws)]
    out += ["rank %d: %s %d points" % (i + 1, pid, score) for i, (score, _, pid) in enumerate(top[:5])]
    out.append("head: seq %d hash %s" % (a.events, a.prev.hex()))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify a Veltrix hunt's public log (docs/FAIRNESS.md).")
    ap.add_argument("file")
    ap.add_argument("--seed", help="the hunt's 32-byte seed, 64 hex characters")
    ap.add_argument("--hunt", help="the hunt id (checks the draws of a rule 0 hunt)")
    args = ap.parse_args(argv)
    seed = args.seed.lower() if args.seed else None
    try:
        if seed is not None and not HEX64.fullmatch(seed):
            raise Unreadable("--seed is not 64 hex characters")
        with open(args.file, encoding="utf-8") as f:
            a = verify(f, seed, args.hunt)
    except Fail as e:
        print("FAIL seq %d: %s" % (e.seq, e))
        return 1
    except (Unreadable, OSError, UnicodeDecodeError) as e:
        print("UNREADABLE: %s" % e)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # not a verdict
        print("UNREADABLE: a log this verifier cannot follow (%s: %s)" % (type(e).__name__, e))
        return 2
    print(summary(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
