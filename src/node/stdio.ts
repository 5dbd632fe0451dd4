import type { CallOptions, InputWriter, OutputReader } from '../api/types';
import { E } from '../kit/errors';
import { abortable, deferred, drainedOrClosed } from '../kit/deferred';
import { OutputBuffer } from './output-buffer';
import type { ElementContext } from './element';

/**
 * What proc and docker share, so that they answer alike: the phase of their one process, its
 * stdin fan-in (any number of writers; stdin closes when the last one closes), leases on its
 * stdout and stderr (one reader at a time, back-pressure on the producer), the exit that `wait`
 * waits for, and auto-scrub (with Scrub, the element goes once the process has exited and both
 * outputs were read to the end). The kind supplies the process; this module keeps the rules.
 */
export type Phase = 'idle' | 'starting' | 'running' | 'exited' | 'scrubbed';

/** A process's stdin as both kinds have it: a Node writable (a pipe, or docker's attach stream). */
export type StdinStream = NodeJS.WritableStream & { writableNeedDrain?: boolean; writable?: boolean; on(ev: string, fn: () => void): unknown; off(ev: string, fn: () => void): unknown };

export class ProcessStdio {
  readonly stdout: OutputBuffer;
  readonly stderr: OutputBuffer;
  #phase: Phase = 'idle';
  #stdin: StdinStream | undefined;
  #writers = 0;
  #stdinClosed = false;
  #autoScrub = false;
  #detaching = false;
  readonly #exit = deferred<void>();

  /** `scrub` is the element's own scrub: auto-scrub runs it, then asks the server to detach. */
  constructor(readonly ctx: ElementContext, readonly scrub: () => unknown) {
    // Scrub may apply once the last bytes of an exited process were acknowledged.
    this.stdout = new OutputBuffer('stdout', ctx.outputWindow, () => this.#maybeDetach());
    this.stderr = new OutputBuffer('stderr', ctx.outputWindow, () => this.#maybeDetach());
    this.#exit.promise.catch(() => {});
  }

  get phase(): Phase {
    return this.#phase;
  }

  /** Refuses a second start; marks the start under way. */
  starting(): void {
    if (this.#phase === 'scrubbed') throw E.aborted();
    if (this.#phase !== 'idle') throw E.procStarted();
    this.#phase = 'starting';
  }

  /** The start failed: idle again, unless scrubbed meanwhile. */
  failed(): void {
    if (this.#phase === 'starting') this.#phase = 'idle';
  }

  /** The process runs; `scrub` is its Cmd's Scrub. */
  running(stdin: StdinStream, scrub: boolean): void {
    this.#stdin = stdin;
    this.#autoScrub = scrub;
    if (this.#phase === 'starting') this.#phase = 'running';
    if (this.#stdinClosed) stdin.end();
  }

  /** The process has exited: waits complete; auto-scrub may apply. */
  exited(): void {
    if (this.#phase === 'running') this.#phase = 'exited';
    this.#exit.resolve();
    this.#maybeDetach();
  }

  /** The element is scrubbed: waits fail with `aborted`, readers see the end. */
  scrubbed(): void {
    this.#phase = 'scrubbed';
    this.#exit.reject(E.aborted());
    this.stdout.end();
    this.stderr.end();
  }

  /** Appends output; pauses the producer while the buffer is above its window. */
  push(which: 'stdout' | 'stderr', chunk: Buffer, pause: () => void, resume: () => void): void {
    this[which].feed(chunk, pause, resume);
  }

  /** The producer of one output (or of both) has ended. */
  end(which?: 'stdout' | 'stderr'): void {
    if (which !== 'stderr') this.stdout.end();
    if (which !== 'stdout') this.stderr.end();
    this.#maybeDetach();
  }

  /** Checks a signal may be sent now. */
  checkSignal(): void {
    if (this.#phase === 'idle' || this.#phase === 'starting') throw E.noProcess();
    if (this.#phase !== 'running') throw E.finished();
  }

  /** Resolves at exit; EINTR when aborted, `aborted` once scrubbed. */
  async wait(opts?: CallOptions): Promise<void> {
    if (this.#phase === 'scrubbed') throw E.aborted();
    this.#started();
    return abortable(this.#exit.promise, opts?.signal, () => E.interrupted());
  }

  openInput(): InputWriter {
    this.#started();
    if (this.#stdinClosed) throw E.stdinClosed();
    this.#writers++;
    let open = true;
    return {
      write: async (data: Buffer, opts?: CallOptions) => {
        if (!open) throw E.stdinClosed();
        await this.#write(data, opts?.signal);
      },
      close: async () => {
        if (!open) return;
        open = false;
        if (--this.#writers === 0) {
          this.#stdinClosed = true;
          this.#stdin?.end();
        }
      },
    };
  }

  /** Writes once stdin has room, so an aborted write has written nothing. */
  async #write(data: Buffer, signal: AbortSignal | undefined): Promise<void> {
    const s = this.#stdin;
    const closed = () => !s || this.#stdinClosed || s.writable === false;
    if (closed()) throw E.stdinClosed();
    if (s!.writableNeedDrain) {
      await abortable(drainedOrClosed(s!), signal, () => E.interrupted());
    }
    if (closed()) throw E.stdinClosed();
    if (data.length) s!.write(data);
  }

  /**
   * A lease on stdout or stderr. Bytes go once acknowledged (a read at a later offset, an ack, a
   * read ahead, a release; a reader that vanished leaves what it did not acknowledge): each
   * drop may complete an auto-scrub (the buffers' onDrop, set in the constructor).
   */
  openOutput(which: 'stdout' | 'stderr'): OutputReader | Promise<OutputReader> {
    this.#started();
    return this[which].acquireNext();
  }

  #started(): void {
    if (this.#phase === 'idle' || this.#phase === 'starting') throw E.notStarted();
  }

  #maybeDetach(): void {
    if (!this.#autoScrub || this.#phase !== 'exited') return;
    for (const b of [this.stdout, this.stderr]) if (!b.ended || b.buffered > 0) return;
    if (this.#detaching) return;
    this.#detaching = true;
    void Promise.resolve()
      .then(this.scrub)
      .then(() => this.ctx.detach(), (e: Error) => this.ctx.log(`auto-scrub of ${this.ctx.path}: ${e.message}`));
  }
}
