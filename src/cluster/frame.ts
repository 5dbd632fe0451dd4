import { SystemError } from '../kit/errors';

/**
 * Frames on a TCP connection: a 4-byte big-endian length, then that many bytes of body. The
 * decoder is a pure state machine (no I/O): feed it chunks as they arrive, in any split, and it
 * returns the whole bodies. A declared length above the maximum fails before anything of that
 * size is allocated; the caller then closes the connection.
 */
export const DEFAULT_MAX_FRAME = 1 << 20;
export const HEADER = 4;

export function encodeFrame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, HEADER);
  return out;
}

export class FrameTooLarge extends SystemError {
  constructor(readonly declared: number, readonly max: number) {
    super('EMSGSIZE', `frame of ${declared} bytes exceeds the maximum of ${max} bytes`);
  }
}

export class FrameDecoder {
  /** Bytes of the header seen so far (0..4) and the header itself. */
  #head = Buffer.alloc(HEADER);
  #headLen = 0;
  /** The body being filled, once the header is whole. */
  #body: Buffer | undefined;
  #bodyLen = 0;
  #failed: FrameTooLarge | undefined;

  constructor(readonly max = DEFAULT_MAX_FRAME) {}

  /** Feeds one chunk; returns every body it completes. Throws FrameTooLarge (and stays failed). */
  push(chunk: Buffer): Buffer[] {
    if (this.#failed) throw this.#failed;
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (!this.#body) {
        const n = Math.min(HEADER - this.#headLen, chunk.length - i);
        chunk.copy(this.#head, this.#headLen, i, i + n);
        this.#headLen += n;
        i += n;
        if (this.#headLen < HEADER) break;
        const len = this.#head.readUInt32BE(0);
        if (len > this.max) {
          this.#failed = new FrameTooLarge(len, this.max);
          throw this.#failed;
        }
        this.#headLen = 0;
        // A whole body inside this chunk needs no copy.
        if (chunk.length - i >= len) {
          out.push(chunk.subarray(i, i + len));
          i += len;
          continue;
        }
        this.#body = Buffer.allocUnsafe(len);
        this.#bodyLen = 0;
      }
      const n = Math.min(this.#body.length - this.#bodyLen, chunk.length - i);
      chunk.copy(this.#body, this.#bodyLen, i, i + n);
      this.#bodyLen += n;
      i += n;
      if (this.#bodyLen === this.#body.length) {
        out.push(this.#body);
        this.#body = undefined;
      }
    }
    return out;
  }

  /** Bytes of an unfinished frame held now (0 between frames). */
  get pending(): number {
    return this.#body ? this.#bodyLen + HEADER : this.#headLen;
  }
}
