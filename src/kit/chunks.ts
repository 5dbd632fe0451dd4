/**
 * A byte stream held as the chunks it arrived in (no copy when they come): what an output
 * buffer keeps (src/node/output-buffer.ts) and what a reader keeps read ahead
 * (src/node/read-ahead.ts).
 */

/** Drops the first n bytes (n no more than what the chunks hold). */
export function dropFront(chunks: Buffer[], n: number): void {
  while (n > 0) {
    const c = chunks[0];
    if (c.length <= n) {
      chunks.shift();
      n -= c.length;
    } else {
      chunks[0] = c.subarray(n);
      n = 0;
    }
  }
}

/** Up to max bytes after the first skip, left in place: one chunk's slice, or a copy of several. */
export function sliceAt(chunks: Buffer[], skip: number, max: number): Buffer {
  const p = partsAt(chunks, skip, max);
  return p.parts.length === 1 ? p.parts[0] : Buffer.concat(p.parts, p.length);
}

/**
 * Bytes as the slices of the chunks that hold them, not copied into one buffer: what a session
 * writes as they are at the end of an answer (src/cluster/session.ts); anything else asks for
 * toBuffer().
 */
export class ByteParts {
  constructor(readonly parts: Buffer[], readonly length: number) {}
  toBuffer(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length);
  }
}

/** Up to max bytes after the first skip, left in place, as slices of the chunks. */
export function partsAt(chunks: Buffer[], skip: number, max: number): ByteParts {
  const out: Buffer[] = [];
  let n = 0;
  for (const c of chunks) {
    if (n >= max) break;
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    const part = c.subarray(skip, skip + (max - n));
    skip = 0;
    out.push(part);
    n += part.length;
  }
  return new ByteParts(out, n);
}

/** Copies up to max bytes after the first skip into `into` (at its start); the count. */
export function copyAt(chunks: Buffer[], skip: number, into: Buffer, max: number): number {
  let n = 0;
  max = Math.min(max, into.length);
  for (const c of chunks) {
    if (n >= max) break;
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    n += c.copy(into, n, skip, Math.min(c.length, skip + (max - n)));
    skip = 0;
  }
  return n;
}
