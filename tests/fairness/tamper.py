"""tamper.py — the tamperings both verifiers must catch (FAIRNESS.md §7), as functions.

Each TAMPERS entry is (name, fn): fn(events, seed) takes a copy of an honest log (event
dicts in seq order, as /log gives them) and the hunt's seed (hex, or None when unknown),
changes it the way a cheater could, and returns (events, seq, args, why): the seq a
verifier must name, the extra command-line arguments to give it (--seed ...), and a word
verify.py's reason contains. Where the change touches hashed bytes the tamperer recomputes
the chain (anybody can: H0 is public), so only the rules can catch it. A log that lacks
what a tampering needs raises AssertionError. Used by test_verify.py (generated logs) and
tests/blackbox/test_fairness_cross.py (logs exported from a server).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify  # noqa: E402
from gen import iso as gen_iso  # noqa: E402


def rechain(events):
    """Recomputes every hash from the first event's seed commitment."""
    cm = events[0].get("seed_commitment")
    prev = bytes.fromhex(cm) if cm else bytes(32)
    for ev in events:
        prev = verify.chain(prev, dict(ev, at_ms=verify.time_ms(ev["at"], "")))
        ev["hash"] = prev.hex()
    return events


def state_before(events, seq, seed=None, hunt=None):
    """verify.Audit after the events before seq."""
    a = verify.Audit(seed, hunt)
    for ev in events[:seq - 1]:
        a.step(dict(ev, at_ms=verify.time_ms(ev["at"], "")))
    return a


def pick(gen, what):
    for x in gen:
        return x
    raise AssertionError("the log has no %s" % what)


def seed_args(seed):
    return ["--seed", seed] if seed else []


def of_type(events, typ):
    return [e for e in events if e["type"] == typ]


# ------------------------------------------------------------------ the tamperings
def hash_byte(events, seed):
    ev = events[len(events) // 2]
    i = 17
    ev["hash"] = ev["hash"][:i] + ("0" if ev["hash"][i] != "0" else "1") + ev["hash"][i + 1:]
    return events, ev["seq"], [], "hash"


def dropped(events, seed):
    i = len(events) // 2
    del events[i]
    return events, events[i]["seq"], [], "seq"


def swapped(events, seed):
    i = len(events) // 2
    events[i], events[i + 1] = events[i + 1], events[i]
    return events, events[i]["seq"], [], "seq"


def chest_to_other_player(events, seed):
    """A chest_opened moved to another player whom the draw would give another chest."""
    players = sorted({e["player"] for e in events if "player" in e})

    def differs(ev, p):
        a = state_before(events, ev["seq"], seed)
        z, inv = a.zones[ev["zone"]], (a.players.get(p) or verify.Player()).inventory
        return a.eligible(z, inv)[1] > 0 and a.drawn(ev["zone"], z, p, inv) != ev["chest"]
    ev, p = pick(((ev, p) for ev in of_type(events, "chest_opened") for p in players
                  if p != ev["player"] and differs(ev, p)), "open whose draw differs for another player")
    ev["player"] = p
    return rechain(events), ev["seq"], seed_args(seed), "draw"


def chest_second_owner(events, seed):
    """A later open renamed to a chest of the same zone opened before: two owners."""
    opens = of_type(events, "chest_opened")
    a, b = pick(((x, y) for i, x in enumerate(opens) for y in opens[i + 1:] if x["zone"] == y["zone"]
                 and x["points"] == y["points"] and x["loot"] == y["loot"]), "two like opens in a zone")
    b["chest"] = a["chest"]
    return rechain(events), b["seq"], [], "opened at seq %d already" % a["seq"]


def scan_points(events, seed):
    ev = pick((e for e in of_type(events, "scan")), "scan")
    ev["points"] += 1   # not covered by the hash
    return events, ev["seq"], [], "points"


def chest_points(events, seed):
    ev = pick((e for e in of_type(events, "chest_opened")), "open")
    ev["points"] += 7
    return events, ev["seq"], [], "points"


def chest_loot(events, seed):
    ev = pick((e for e in of_type(events, "chest_opened")), "open")
    ev["loot"] = ev["loot"] + ["gem"]
    return events, ev["seq"], [], "loot"


def scan_twice(events, seed):
    """A scan renamed to a code the same player scanned before."""
    firsts = {}
    for ev in of_type(events, "scan"):
        if ev["player"] in firsts and firsts[ev["player"]] != ev["code"]:
            ev["code"] = firsts[ev["player"]]
            return rechain(events), ev["seq"], [], "scanned code"
        firsts.setdefault(ev["player"], ev["code"])
    raise AssertionError("the log has no player with two scans")


def item_beyond_quantity(events, seed):
    """One more item_collected of an item all of whose quantity was collected."""
    a = state_before(events, len(events) + 1, seed)
    item, pid = pick(((i, p) for i, q in sorted(a.items.items()) if a.collected.get(i, 0) == q
                      for p in sorted(a.players) if i not in a.players[p].collected), "exhausted item")
    last = events[-1]
    events.append({"seq": last["seq"] + 1, "type": "item_collected", "at": last["at"], "player": pid,
                   "display_name": "X", "item": item, "hash": ""})
    return rechain(events), last["seq"] + 1, [], "all"


def other_seed(seed):
    seed = seed or "ab" * 32
    return ("0" if seed[0] != "0" else "1") + seed[1:]


def seed_given_wrong(events, seed):
    return events, 1, ["--seed", other_seed(seed)], "seed"


def seed_revealed_wrong(events, seed):
    if "seed" not in events[0]:
        raise AssertionError("the log does not reveal the seed")
    events[0]["seed"] = other_seed(events[0]["seed"])   # not hashed: only the commitment sees it
    return events, 1, [], "seed"


def definition_text(events, seed):
    ev = pick((e for e in reversed(of_type(events, "hunt_updated")) if "definition_text" in e),
              "definition_text")
    ev["definition_text"] += " "   # still the same JSON, not the same bytes
    return events, ev["seq"], [], "definition_sha256"


def out_of_window(events, seed, end=True):
    """The last play event moved to ends_at (end) or 1 ms before starts_at."""
    ev = pick((e for e in reversed(events) if "player" in e), "play event")
    lo, hi = state_before(events, ev["seq"], seed).window
    ev["at"] = gen_iso(hi if end else lo - 1)
    return rechain(events), ev["seq"], [], "outside"


def before_start(events, seed):
    return out_of_window(events, seed, end=False)


def map_version_back(events, seed):
    maps = of_type(events, "map_published")
    if len(maps) < 2:
        raise AssertionError("the log has fewer than 2 map_published")
    maps[1]["version"] = maps[0]["version"]
    return rechain(events), maps[1]["seq"], [], "map version"


def later_update_rule1(events, seed):
    ev = pick((e for e in of_type(events, "hunt_updated") if e["seq"] > 1), "update")
    ev["draw_rule"] = 1
    return rechain(events), ev["seq"], [], "draw_rule"


def first_not_update(events, seed):
    del events[0]
    for n, e in enumerate(events, 1):
        e["seq"] = n
    return rechain(events), 1, [], "first event"


def requires_not_held(events, seed):
    """An open of a chest that requires an item, moved to a player who holds none."""
    for ev in of_type(events, "chest_opened"):
        a = state_before(events, ev["seq"], seed)
        req = a.zones[ev["zone"]].find(ev["chest"])[0].requires
        lacking = [p for p in sorted(a.players) if req and a.players[p].inventory.get(req, 0) < 1]
        if lacking:
            ev["player"] = lacking[0]
            return rechain(events), ev["seq"], [], "requires"
    raise AssertionError("the log has no open of a chest that requires an item")


def unknown_code(events, seed):
    ev = pick((e for e in of_type(events, "scan")), "scan")
    ev["code"] = "no-such-code"
    return rechain(events), ev["seq"], [], "not in the definition"


def collect_twice(events, seed):
    """The first item_collected again, at the end of the log."""
    ev = pick((e for e in of_type(events, "item_collected")), "item_collected")
    last = events[-1]
    events.append(dict(ev, seq=last["seq"] + 1, at=last["at"]))
    return rechain(events), last["seq"] + 1, [], "item"


def dropped_rechained(events, seed):
    """An item_collected dropped, the rest renumbered and re-chained: the first open by that
    player that needed the item (it held just one) fails. Draws are not checked (no seed):
    without the item, the player's earlier draws could change too."""
    if "seed" in events[0]:
        raise AssertionError("dropped_rechained needs a log that does not reveal the seed")
    for i, ev in enumerate(events):
        if ev["type"] != "item_collected":
            continue
        for op in events[i + 1:]:
            if op["type"] != "chest_opened" or op["player"] != ev["player"]:
                continue
            a = state_before(events, op["seq"])
            if a.zones[op["zone"]].find(op["chest"])[0].requires == ev["item"]:
                if a.players[op["player"]].inventory[ev["item"]] != 1:
                    break
                del events[i]
                for n, e in enumerate(events, 1):
                    e["seq"] = n
                return rechain(events), op["seq"], [], "requires"
    raise AssertionError("the log has no open that needs a collected item")


TAMPERS = [("hash_byte", hash_byte), ("dropped", dropped), ("swapped", swapped),
           ("chest_to_other_player", chest_to_other_player), ("chest_second_owner", chest_second_owner),
           ("scan_points", scan_points), ("chest_points", chest_points), ("chest_loot", chest_loot),
           ("scan_twice", scan_twice), ("item_beyond_quantity", item_beyond_quantity),
           ("seed_given_wrong", seed_given_wrong), ("seed_revealed_wrong", seed_revealed_wrong),
           ("definition_text", definition_text), ("after_end", out_of_window),
           ("before_start", before_start), ("map_version_back", map_version_back),
           ("later_update_rule1", later_update_rule1), ("first_not_update", first_not_update),
           ("requires_not_held", requires_not_held), ("unknown_code", unknown_code),
           ("collect_twice", collect_twice), ("dropped_rechained", dropped_rechained)]
# the tamperings that need the seed revealed in the log (definition_text, seed) or known
NEEDS_REVEAL = {"seed_revealed_wrong", "definition_text"}
NEEDS_UNREVEALED = {"dropped_rechained"}
NEEDS_SEED = {"chest_to_other_player"}
