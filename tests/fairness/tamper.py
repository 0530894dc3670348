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


TAMPERS = [("hash_byte", hash_byte), ("dropped", dropped), ("swapped", swapped),
           ("chest_to_other_player", chest_to_other_player), ("chest_second_owner", chest_second_owner),
           ("scan_points", scan_points), ("chest_points", chest_points), ("chest_loot", chest_loot),
           ("scan_twice", scan_twice), ("item_beyond_quantity", item_beyond_quantity),
           ("seed_given_wrong", seed_given_wrong), ("seed_revealed_wrong", seed_revealed_wrong),
           ("definition_text", definition_text)]
# the tamperings that need the seed revealed in the log (definition_text, seed) or known
NEEDS_REVEAL = {"seed_revealed_wrong", "definition_text"}
NEEDS_SEED = {"chest_to_other_player"}
