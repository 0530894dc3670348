/* api_cluster.c — this node's part in a hunt when several nodes share a store (issue 15,
 * docs/DESIGN.md "Several nodes"): whether it may write the hunt now, and under which
 * lease epoch (the store fences a batch whose epoch is no longer the hunt's).
 *
 * Invariants: a single node (no --node-id) writes every hunt, unfenced (epoch 0); one of
 * several writes a hunt only while node_owns() says its lease is held and fresh. */
#include "api_int.h"
#include "node.h"

#include <stdio.h>

int api_write_epoch(const char *hunt, uint64_t *epoch)
{
    *epoch = 0;
    if (!api_app.cfg.node) return 1;
    return node_owns(api_app.cfg.node, hunt, epoch);
}

void api_hunt_fenced(const char *hunt)
{
    fprintf(stderr, "veltrix: hunt %s: a write was fenced: its lease moved to another node\n",
            hunt);
}
