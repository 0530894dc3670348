#!/usr/bin/env python3
"""Black-box tests: players, sessions, tokens, idempotent player creation (API.md
"Players and sessions", "Conventions")."""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vx  # noqa: E402
from vx import check, eq, true, test, short  # noqa: E402

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def srv():
    return vx.shared()


def uuid_ms(u):
    return int(u.replace("-", "")[:12], 16)


def check_uuid7(u, what):
    true(isinstance(u, str) and UUID7.match(u.lower()),
         "%s: %r is not a UUIDv7 (version nibble 7, variant 10xx)" % (what, u))
    ms = uuid_ms(u)
    now = time.time() * 1000
    true(abs(ms - now) < 120000, "%s: UUIDv7 %s carries timestamp %d ms, now is %d ms"
         % (what, u, ms, now))


def tamper(tok, i):
    """tok with the character at i replaced by one whose value differs in used bits."""
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ch = tok[i]
    if ch in alpha:
        new = alpha[alpha.index(ch) ^ 0x20]
    elif ch == "+":
        new = "A"
    elif ch == "/":
        new = "B"
    else:
        new = "Q" if ch != "Q" else "R"
    return tok[:i] + new + tok[i + 1:]


# ---------------------------------------------------------------------------------------
@test
def create_player_fields():
    s = srv()
    c = s.client()
    t0 = time.time() * 1000
    r = c.req("POST", "/v1/players", {"display_name": "Ana"})
    check(r, 201)
    true("application/json" in r.headers.get("content-type", ""),
         "POST /v1/players: content-type %r" % r.headers.get("content-type"))
    b = r.body
    true(isinstance(b, dict), "body not an object: %s" % short(b))
    for k in ("player_id", "display_name", "token", "expires_in", "refresh_token"):
        true(k in b, "POST /v1/players: field %r missing in %s" % (k, short(b)))
    check_uuid7(b["player_id"], "player_id")
    eq(b["display_name"], "Ana", "display_name")
    true(isinstance(b["token"], str) and len(b["token"]) >= 16, "token: %r" % b["token"])
    true(isinstance(b["refresh_token"], str) and len(b["refresh_token"]) >= 16,
         "refresh_token: %r" % b["refresh_token"])
    true(b["token"] != b["refresh_token"], "token equals refresh_token")
    true(type(b["expires_in"]) is int, "expires_in not an integer: %r" % b["expires_in"])
    eq(b["expires_in"], 600, "expires_in (default --token-ttl)")
    true(uuid_ms(b["player_id"]) >= t0 - 2000, "player id timestamp older than the request")
    # the client can never choose the id
    r = c.req("POST", "/v1/players", {"display_name": "Bo", "player_id": b["player_id"]})
    check(r, 201)
    true(r.body["player_id"] != b["player_id"], "client-supplied player_id was used")


@test
def uuidv7_distinct_and_increasing():
    c = srv().client()
    ids = []
    for i in range(40):
        pid, _, _ = vx.new_player(c, "u%d" % i)
        check_uuid7(pid, "player_id #%d" % i)
        ids.append(pid.lower())
    eq(len(set(ids)), len(ids), "number of distinct player ids")
    for a, b in zip(ids, ids[1:]):
        true(a < b, "player ids not increasing: %s then %s" % (a, b))


@test
def display_name_rules():
    c = srv().client()
    col = vx.Collect()
    good = [
        ("  Ana  ", "Ana"),
        ("Ana Maria", "Ana Maria"),
        ("a" * 32, "a" * 32),
        ("   " + "b" * 32 + "   ", "b" * 32),
        ("é" * 32, "é" * 32),                 # 2-byte UTF-8
        ("語" * 32, "語" * 32),                # 3-byte UTF-8
        ("😀" * 32, "😀" * 32),                # 4-byte UTF-8, one character each
        ("x", "x"),
    ]
    for given, want in good:
        r = c.req("POST", "/v1/players", {"display_name": given})
        if col.check(r, 201, what="valid display_name %r" % given):
            col.eq(r.body.get("display_name"), want, "display_name for %r" % given)
            r2 = c.req("GET", "/v1/players/me", token=r.body["token"])
            if col.check(r2, 200):
                col.eq(r2.body.get("display_name"), want, "GET /v1/players/me display_name for %r" % given)
    bad = ["", " ", "      ", "a" * 33, "é" * 33, "😀" * 33, "A\u0001B", "A\nB", "A\u0000B",
           "A\u007fB", "A\u0085B", "\u001b[31mred", "A\tB"]
    for given in bad:
        r = c.req("POST", "/v1/players", {"display_name": given})
        col.check(r, 400, "invalid_request", what="display_name %r" % given)
    for given in [123, None, ["Ana"], {"n": "Ana"}, True, 1.5]:
        r = c.req("POST", "/v1/players", {"display_name": given})
        col.check(r, 400, "invalid_request", what="display_name of wrong type %r" % (given,))
    for body in [{}, {"name": "Ana"}, {"Display_Name": "Ana"}]:
        r = c.req("POST", "/v1/players", body)
        col.check(r, 400, "invalid_request", what="display_name missing")
    r = c.req("POST", "/v1/players", b"")
    col.check(r, 400, what="empty body")
    # unknown extra fields are ignored
    r = c.req("POST", "/v1/players", {"display_name": "Zed", "color": "blue", "n": [1, 2]})
    if col.check(r, 201, what="unknown fields"):
        col.eq(r.body["display_name"], "Zed", "display_name with extra fields")
    col.done()


@test
def players_me():
    c = srv().client()
    t0 = time.time()
    pid, tok, _ = vx.new_player(c, "  Mia ")
    r = c.req("GET", "/v1/players/me", token=tok)
    check(r, 200)
    b = r.body
    eq(b.get("player_id"), pid, "me.player_id")
    eq(b.get("display_name"), "Mia", "me.display_name")
    ca = b.get("created_at")
    true(isinstance(ca, str) and RFC3339_MS.match(ca), "created_at not RFC 3339 UTC with ms: %r" % ca)
    ts = calendar.timegm(time.strptime(ca[:19], "%Y-%m-%dT%H:%M:%S"))
    true(abs(ts - t0) < 60, "created_at %s is not now (%s)" % (ca, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))))
    r = c.req("GET", "/v1/players/me")
    check(r, 401, "unauthorized", what="no Authorization")
    # a second player sees itself
    pid2, tok2, _ = vx.new_player(c, "Noa")
    r = c.req("GET", "/v1/players/me", token=tok2)
    check(r, 200)
    eq(r.body.get("player_id"), pid2, "me.player_id of second player")


@test
def refresh_rotation_and_reuse_revokes():
    c = srv().client()
    pid, t1, r1 = vx.new_player(c, "Rot")
    opid, ot, orf = vx.new_player(c, "Other")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": r1})
    check(r, 200)
    b = r.body
    for k in ("token", "expires_in", "refresh_token"):
        true(k in b, "refresh response lacks %r: %s" % (k, short(b)))
    eq(b["expires_in"], 600, "refresh expires_in")
    t2, r2 = b["token"], b["refresh_token"]
    true(r2 != r1, "refresh token was not rotated")
    r = c.req("GET", "/v1/players/me", token=t2)
    check(r, 200, what="new token")
    eq(r.body["player_id"], pid, "player of the new token")
    r = c.req("GET", "/v1/players/me", token=t1)
    check(r, 200, what="old token still valid until revocation/expiry")
    # r2 works once
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": r2})
    check(r, 200, what="second rotation")
    t3, r3 = r.body["token"], r.body["refresh_token"]
    true(r3 not in (r1, r2), "third refresh token not new")
    check(c.req("GET", "/v1/players/me", token=t3), 200, what="third token")
    # reuse r1 -> family revoked
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": r1})
    check(r, 401, "refresh_token_reused", what="reused refresh token")
    for name, t in (("first", t1), ("second", t2), ("third", t3)):
        check(c.req("GET", "/v1/players/me", token=t), 401, "unauthorized",
              what="%s token after the family was revoked" % name)
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": r3}), 401, "unauthorized",
          what="latest (unused) refresh token after revocation")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": r2}), 401,
          what="used refresh token after revocation")
    # the other player is unaffected
    r = c.req("GET", "/v1/players/me", token=ot)
    check(r, 200, what="other player's token")
    eq(r.body["player_id"], opid, "other player's id")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": orf})
    check(r, 200, what="other player's refresh token")
    check(c.req("GET", "/v1/players/me", token=r.body["token"]), 200, what="other player's new token")


@test
def refresh_bad_inputs():
    c = srv().client()
    pid, tok, rt = vx.new_player(c, "Rb")
    for bad in ["", "garbage", "x" * 300, tok, tamper(rt, len(rt) // 2), tamper(rt, len(rt) - 1),
                rt[:-1], rt + "A"]:
        check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": bad}), 401, "unauthorized",
              what="refresh with invalid token %r" % bad[:40])
    for bad in [None, 5, [rt], {"t": rt}, True]:
        check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": bad}), 400, "invalid_request",
              what="refresh_token of wrong type")
    check(c.req("POST", "/v1/sessions/refresh", {}), 400, "invalid_request", what="missing refresh_token")
    # the refresh token is not a bearer token
    check(c.req("GET", "/v1/players/me", token=rt), 401, "unauthorized", what="refresh token as bearer")
    # none of that burned the real refresh token
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": rt})
    check(r, 200, what="genuine refresh token after invalid attempts")


@test
def forged_and_garbage_tokens():
    c = srv().client()
    pid, tok, _ = vx.new_player(c, "Forge")
    pid2, tok2, _ = vx.new_player(c, "Forge2")
    variants = {}
    n = len(tok)
    for i in sorted({0, 1, n // 3, n // 2, (2 * n) // 3, n - 2, n - 1}):
        variants["char %d changed" % i] = tamper(tok, i)
    if "." in tok:
        parts = tok.split(".")
        for j, p in enumerate(parts):
            if len(p) > 2:
                q = list(parts)
                q[j] = tamper(p, len(p) // 2)
                variants["part %d changed" % j] = ".".join(q)
        # header/payload of one token with the signature of another
        parts2 = tok2.split(".")
        if len(parts2) == len(parts):
            variants["signature of another token"] = ".".join(parts[:-1] + parts2[-1:])
            variants["payload of another token"] = ".".join(parts2[:-1] + parts[-1:])
    else:
        k = min(16, n // 2)
        if tok[-k:] != tok2[-k:]:
            variants["tail of another token"] = tok[:-k] + tok2[-k:]
    variants.update({
        "truncated": tok[:-1], "extended": tok + "A", "empty": "", "short": "abc",
        "long": "A" * 4000, "doubled": tok + tok, "spaces": tok[: n // 2] + " " + tok[n // 2:],
        "admin key": srv().admin_key,
    })
    for what, t in variants.items():
        r = c.req("GET", "/v1/players/me", headers={"Authorization": "Bearer " + t})
        if what == "admin key":
            check(r, (401, 403), what="admin key as player token")
        else:
            check(r, 401, "unauthorized", what="tampered token (%s)" % what)
    for hv in ["Basic " + tok, "Token " + tok, tok, "Bearer", "Bearer  ", "Bearer\t"]:
        r = c.req("GET", "/v1/players/me", headers={"Authorization": hv})
        check(r, 401, "unauthorized", what="Authorization %r" % hv[:30])
    check(c.req("GET", "/v1/players/me", token=tok), 200, what="genuine token still works")


@test
def token_expiry():
    s = vx.Server(token_ttl=1).start()
    c = s.client()
    r = c.req("POST", "/v1/players", {"display_name": "Ttl"})
    check(r, 201)
    eq(r.body["expires_in"], 1, "expires_in with --token-ttl 1")
    tok, rt = r.body["token"], r.body["refresh_token"]
    check(c.req("GET", "/v1/players/me", token=tok), 200, what="fresh token")
    time.sleep(2.2)
    check(c.req("GET", "/v1/players/me", token=tok), 401, "token_expired", what="token after its ttl")
    # a tampered expired token is not "expired", it is invalid
    check(c.req("GET", "/v1/players/me", token=tamper(tok, len(tok) // 2)), 401, "unauthorized",
          what="tampered expired token")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": rt})
    check(r, 200, what="refresh after the token expired")
    eq(r.body["expires_in"], 1, "refresh expires_in")
    check(c.req("GET", "/v1/players/me", token=r.body["token"]), 200, what="refreshed token")


@test
def tokens_survive_restart():
    s = vx.Server().start()
    c = s.client()
    pid, t1, r1 = vx.new_player(c, "Keep")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": r1})
    check(r, 200)
    t2, r2 = r.body["token"], r.body["refresh_token"]
    pid_b, tb, rb = vx.new_player(c, "Keep2")
    ra = c.req("POST", "/v1/players", {"display_name": "IdemKeep"}, headers={"Idempotency-Key": "restart-k1"})
    check(ra, 201)
    c.close()
    s.restart()
    c = s.client()
    for what, t in (("token from creation", t1), ("token from refresh", t2)):
        r = c.req("GET", "/v1/players/me", token=t)
        check(r, 200, what=what + " after restart")
        eq(r.body["player_id"], pid, what + " player after restart")
        eq(r.body["display_name"], "Keep", "display_name after restart")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": r2})
    check(r, 200, what="unused refresh token after restart")
    t3 = r.body["token"]
    check(c.req("GET", "/v1/players/me", token=t3), 200, what="token refreshed after restart")
    # idempotency keys survive restarts
    rr = c.req("POST", "/v1/players", {"display_name": "IdemKeep"}, headers={"Idempotency-Key": "restart-k1"})
    check(rr, 201, what="idempotent replay after restart")
    eq(rr.body, ra.body, "replayed body after restart")
    eq(rr.headers.get("idempotent-replayed", "").lower(), "true", "Idempotent-Replayed after restart")
    # the used-refresh-token state survives too: r1 was used before the restart
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": r1}), 401, "refresh_token_reused",
          what="refresh token used before the restart, reused after it")
    check(c.req("GET", "/v1/players/me", token=t3), 401, "unauthorized", what="token after family revoked")
    check(c.req("GET", "/v1/players/me", token=tb), 200, what="other player's token after restart")
    # new ids after a restart never collide and keep increasing
    pid_c, _, _ = vx.new_player(c, "After")
    check_uuid7(pid_c, "id after restart")
    true(pid_c.lower() > pid_b.lower(), "id after restart %s not greater than %s" % (pid_c, pid_b))
    # a second restart after a SIGKILL: still valid
    c.close()
    s.kill()
    s.start()
    c = s.client()
    check(c.req("GET", "/v1/players/me", token=tb), 200, what="token after SIGKILL + restart")
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": rb})
    check(r, 200, what="refresh token after SIGKILL + restart")


def refresh_rows(data_dir):
    """{player id (bytes): refresh rows} in the store of a stopped server, read only."""
    import sqlite3
    if vx.STORE == "pg":  # the server's own fresh database (vx.pg_store_of)
        import pgutil
        out = pgutil.psql(vx.pg_store_of(data_dir), "SELECT encode(player,'hex'), count(*) "
                          "FROM veltrix.refresh GROUP BY player")
        return {bytes.fromhex(k): int(v) for k, v in
                (line.split("|") for line in out.splitlines() if line)}
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "veltrix.db"), uri=True)
    try:
        return dict(db.execute("SELECT player, count(*) FROM refresh GROUP BY player").fetchall())
    finally:
        db.close()


@test
def refresh_rows_stay_bounded():
    """Every refresh used to add a row that was never deleted (63k refreshes, 63k rows,
    all read at startup). The store keeps what reuse detection needs: the current token."""
    n = 60
    s = vx.Server().start()
    c = s.client()
    players = {}
    for name in ("Rows", "Rows2"):
        pid, _, rt = vx.new_player(c, name)
        rts = [rt]
        for i in range(n):
            r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": rts[-1]})
            check(r, 200, what="refresh %d of %s" % (i + 1, name))
            rts.append(r.body["refresh_token"])
        players[name] = (pid, rts)
    c.close()
    s.stop()
    rows = refresh_rows(s.data)
    for name, (pid, _) in players.items():
        got = rows.get(bytes.fromhex(pid.replace("-", "")), 0)
        true(1 <= got <= 2, "%s: %d refresh rows in the store after %d refreshes (want 1)"
             % (name, got, n))
    true(sum(rows.values()) <= 4, "refresh rows in all: %d for 2 players" % sum(rows.values()))
    # reuse detection still works after a restart, from what the store kept
    s.start()
    c = s.client()
    pid, rts = players["Rows"]
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": rts[n // 2]}), 401,
          "refresh_token_reused", what="an old refresh token presented after a restart")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": rts[-1]}), 401, "unauthorized",
          what="the current refresh token after the reuse revoked the sessions")
    pid, rts = players["Rows2"]
    r = c.req("POST", "/v1/sessions/refresh", {"refresh_token": rts[-1]})
    check(r, 200, what="the current refresh token after a restart")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": rts[-1]}), 401,
          "refresh_token_reused", what="the token just used, presented again after a restart")
    check(c.req("POST", "/v1/sessions/refresh", {"refresh_token": r.body["refresh_token"]}), 401,
          "unauthorized", what="the newest refresh token after the reuse")


@test
def idempotent_player_creation():
    c = srv().client()
    body = {"display_name": "Idem"}
    r1 = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": "create-ana-1"})
    check(r1, 201)
    true(r1.headers.get("idempotent-replayed", "false").lower() != "true",
         "first response carries Idempotent-Replayed: true")
    r2 = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": "create-ana-1"})
    check(r2, 201, what="replay")
    eq(r2.body, r1.body, "replayed body")
    eq(r2.headers.get("idempotent-replayed", "").lower(), "true", "Idempotent-Replayed header on replay")
    # the replayed token is the same, working token
    check(c.req("GET", "/v1/players/me", token=r2.body["token"]), 200, what="replayed token")
    # another client address with the same key and body is another request: it must not
    # be handed the first client's credentials
    other = vx.SourceClient(srv(), "127.0.0.2")
    r2b = other.req("POST", "/v1/players", body, headers={"Idempotency-Key": "create-ana-1"})
    check(r2b, 201, what="same key from another address")
    true(r2b.body["player_id"] != r1.body["player_id"] and r2b.body["token"] != r1.body["token"],
         "another address was handed the first player's credentials")
    true(r2b.headers.get("idempotent-replayed", "false").lower() != "true", "another address got a replay")
    # same key, different body
    r3 = c.req("POST", "/v1/players", {"display_name": "Other"}, headers={"Idempotency-Key": "create-ana-1"})
    check(r3, 422, "idempotency_key_reused", what="same key, different body")
    # a different key creates a different player
    r4 = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": "create-ana-2"})
    check(r4, 201)
    true(r4.body["player_id"] != r1.body["player_id"], "different key gave the same player")
    true(r4.headers.get("idempotent-replayed", "false").lower() != "true", "new key marked as replay")
    # a key of 255 printable characters is accepted, and replayed
    k = "".join(chr(33 + (i % 94)) for i in range(255))
    r5 = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": k})
    check(r5, 201, what="255-char key")
    r6 = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": k})
    check(r6, 201)
    eq(r6.body, r5.body, "replay with a 255-char key")
    # invalid keys
    r = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": "x" * 256})
    check(r, 400, what="Idempotency-Key of 256 chars")
    for bad in ["abc\x7fdef", "key\x01"]:  # may be refused by the HTTP parser itself
        r = c.req("POST", "/v1/players", body, headers={"Idempotency-Key": bad})
        true(r.status == 400, "%s: expected 400, got %d %s" % (r.desc, r.status, short(r.body)))


if __name__ == "__main__":
    vx.run_all()
