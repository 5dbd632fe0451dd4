import type { BackoffPolicy } from '../kit/backoff';

/**
 * How much input one request may carry (issue 12: bounded input, refused early). Every control
 * file and every CLI input that is read whole has a bound; the write (or the read of standard
 * input) that crosses it fails at once with EMSGSIZE, and no more than the bound is held for it.
 * docs/fs.md and docs/cli.md list them.
 */

/** One line of a line file (cap, signal, ctl, address, unset, records): a few KiB. */
export const LINE_MAX = 4096;

/** A JSON spec (a process's or container's cmd, `circuit mkproc`/`mkdkr` input, `waitall` paths). */
export const SPEC_MAX = 1 << 20;

/** A channel message: the default of a server's configured maximum (`send`, `circuit send`). */
export const MESSAGE_MAX = 16 << 20;

/** Headroom a request's other fields get on the wire beside a message of the maximum size. */
export const WIRE_OVERHEAD = 64 << 10;

/**
 * How long a receiver whose connection ended while its acknowledgement was on the way keeps
 * asking its server, over new connections, whether it arrived (src/node/takes.ts): the CLI's
 * `recv`, and a server in the middle for its receivers. Longer than a partition that heals.
 */
export const ACK_AGAIN_MS = 60_000;

/** The pauses between those questions: 50 ms, doubling, at most a second. */
export const ACK_AGAIN_BACKOFF: BackoffPolicy = { initial: 50, factor: 2, max: 1000 };
