/* api_hunts.c — hunts (admin): definitions, codes and their QR codes, the state digest. */
#include "api_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* ---- hunts (admin) ---- */

/* The public view of a hunt: the engine's, plus the seed once the hunt has ended (API.md
 * "Fairness evidence"). New reference; NULL if not defined. */
static json_t *hunt_view(const struct hunt *h)
{
    char seed[2 * ENGINE_SEED_BYTES + 1];
    json_t *o = engine_hunt_json(h);
    if (o && engine_seed_reveal(h, api_now_ms(), seed) == 0)
        json_object_set_new(o, "seed", json_string(seed));
    return o;
}

/* engine_define with a fresh secret seed from the OS when h is not defined yet (an
 * update keeps the hunt's seed). */
int api_define_hunt(const struct hunt *h, const char *json, size_t len, struct event *ev, char *err,
                    size_t errcap)
{
    uint8_t seed[ENGINE_SEED_BYTES];
    VX_FATAL_IF(!engine_defined(h) && auth_random(seed, sizeof seed)); /* no OS randomness */
    return engine_define(h, json, len, engine_defined(h) ? NULL : seed, api_now_ms(), ev, err,
                         errcap);
}

void api_hunt_put(struct http_req *r)
{
    char id[ENGINE_ID_MAX + 1], err[512];
    if (api_admin(r) || api_param_id(r, 0, id)) return;
    struct hunt *h = hmap_get(&api_app.hunts, id, strlen(id));
    int created = !h;
    if (created && api_app.hunts.count >= api_app.cfg.hunts_max) {
        http_error(r, 503, "hunt_limit", "the server holds its maximum number of hunts");
        return;
    }
    char seed_hex[2 * ENGINE_SEED_BYTES + 1];
    if (!created && engine_seed_reveal(h, api_now_ms(), seed_hex) == 0) {
        /* Its seed is public now: reopened, its draws could be predicted. */
        http_error(r, 409, "hunt_ended",
                   "the hunt has ended and its seed is revealed; create a new hunt instead");
        return;
    }
    if (!api_log_room(r)) return;
    VX_FATAL_IF(created && !(h = engine_hunt_create(id)));
    struct http_str b = http_body(r);
    struct event ev;
    err[0] = '\0';
    int rc = api_define_hunt(h, b.p, b.len, &ev, err, sizeof err);
    if (rc) {
        if (created) engine_hunt_destroy(h);
        json_t *parsed = rc == ENGINE_EINVAL ? json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL) : NULL;
        if (rc == ENGINE_EINVAL && !parsed)
            http_error(r, 400, "invalid_json", "the body is not valid JSON");
        else
            http_error(r, api_engine_status(rc), engine_err_code(rc), "%s",
                       err[0] ? err : engine_err_code(rc));
        json_decref(parsed);
        return;
    }
    api_apply(h, &ev, NULL);
    VX_FATAL_IF(created && hmap_put(&api_app.hunts, engine_hunt_id(h), strlen(id), h));
    struct log_entry *e = api_new_entry();
    api_entry_event(e, h, &ev);
    api_submit(r, NULL, e, created ? 201 : 200, hunt_view(h));
}

void api_hunt_get(struct http_req *r)
{
    struct hunt *h = api_hunt_param(r);
    if (h) http_send_json(r, 200, hunt_view(h));
}

void api_codes(struct http_req *r)
{
    struct hunt *h;
    if (api_admin(r) || !(h = api_hunt_param(r))) return;
    json_t *codes = engine_codes_json(h), *c;
    size_t i;
    json_array_foreach(codes, i, c)
    {
        char payload[AUTH_PAYLOAD_MAX];
        auth_payload_make(&api_app.auth, engine_hunt_id(h),
                          json_string_value(json_object_get(c, "id")), payload);
        json_object_set_new(c, "payload", json_string(payload));
    }
    http_send_json(r, 200, json_pack("{s:o}", "codes", codes));
}

void api_qr(struct http_req *r)
{
    struct hunt *h;
    char code[ENGINE_ID_MAX + 1], payload[AUTH_PAYLOAD_MAX];
    if (api_admin(r) || !(h = api_hunt_param(r)) || api_param_id(r, 1, code)) return;
    if (!engine_has_code(h, code)) {
        http_error(r, 404, "code_not_found", "no code '%s' in this hunt", code);
        return;
    }
    auth_payload_make(&api_app.auth, engine_hunt_id(h), code, payload);
    size_t len;
    char *svg = qr_svg(payload, &len);
    if (!svg) {
        http_error(r, 503, "unavailable", "could not encode the QR code");
        return;
    }
    http_send(r, 200, "image/svg+xml", svg, len);
    free(svg);
}

void api_digest(struct http_req *r)
{
    struct hunt *h;
    if (api_admin(r) || !(h = api_hunt_param(r))) return;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)engine_digest(h));
    http_send_json(r, 200, json_pack("{s:I,s:s}", "seq", (json_int_t)engine_seq(h), "digest", hex));
}
