/* audit.h — `veltrix audit`: checks a hunt's fairness evidence with the real engine.
 *
 *   veltrix audit HUNT (--store URL | --log FILE) [--seed HEX]
 *
 * Input: the hunt's events from a store (every row; the seed is in the creating
 * definition's payload) or from a JSON-lines file of GET /v1/hunts/{hunt}/log event
 * objects (the seed from its "seed" or --seed, which must match the commitment).
 * Checks, event by event in seq order: the hash chain (every stored or listed hash), that
 * the event applies (one owner per chest, once-only scans and collects, requirements,
 * the hunt's time window), every open's chest against the seeded draw (when the seed is
 * known; else reported "not checked"), listed points and loot against the engine's.
 * Output: a summary on stdout (events, players, chests opened, draws checked, the final
 * top 10, the head seq and hash), or one line naming the first seq that does not hold. */
#ifndef VELTRIX_AUDIT_H
#define VELTRIX_AUDIT_H

/* argv[0] is "audit". Returns the exit status: 0 everything holds, 1 something does not
 * (message on stderr), 2 bad arguments or unreadable input. */
int audit_main(int argc, char **argv);

#endif
