/**
 * The Client API: the one interface that the FUSE layer, the CLI and users' programs call.
 * Two implementations: LocalClient (inside a daemon, calling its Server directly) and
 * RemoteClient (over a connection to any server). Paths are anchor paths such as
 * `/X88550014d4c82e4d/hi/charlie`; the first component names the server that runs the call.
 *
 * Every method fails with a CircuitError: AppError for answers (busy anchor, closed channel, bad
 * input), SystemError when the call may not have reached the element's home.
 */
import type { Now } from '../kit/now';

/**
 * An element kind's name. The built-in ones are below; a kind is a plugin (docs/kinds.md), so any
 * name a server registers is one.
 */
export type Kind = string;
export type BuiltinKind = 'server' | 'chan' | 'proc' | 'dns' | 'docker' | '@join' | '@leave';

/** What a client says it is when it connects. */
export type ClientLabel = 'cli' | 'api' | 'mount' | 'peer';
export const CLIENT_LABELS: readonly ClientLabel[] = ['cli', 'api', 'mount', 'peer'];

/**
 * Who asked: recorded in the operations log. `via` is always decided by the server, from where
 * the call arrived: its own mount or code (`mount`, `server`, `api`), its control socket
 * (`socket`) or a TCP connection (`tcp`). What a connection's client says it is (`cli`, `api`,
 * `mount`, `peer`: another server routing a call) is kept apart, in `says`, since a peer can say
 * anything.
 */
export interface Origin {
  via: ClientLabel | 'server' | 'socket' | 'tcp';
  /** For a connection: what its client said it is, in its hello (untrusted). */
  says?: ClientLabel;
  /** The connection's peer address, for remote calls (`local` for the control socket). */
  peer?: string;
  /** The local caller, for calls through the mount. */
  uid?: number;
  pid?: number;
}

export interface CallOptions {
  /** Aborting fails the call with EINTR and undoes it: nothing consumed, nothing enqueued. */
  signal?: AbortSignal;
  origin?: Origin;
}

export interface Entry {
  name: string;
  /** Absolute anchor path. */
  path: string;
  /** The kind of the element the anchor holds, or null for an empty anchor. */
  kind: Kind | null;
}

/** The JSON a process starts from (docs/fs.md, `proc`). */
export interface ProcCmd {
  Env: string[] | null;
  Dir: string;
  Path: string;
  Args: string[] | null;
  Scrub: boolean;
}

/** The JSON a container starts from (docs/docker.md). */
export interface DockerRun {
  Image: string;
  Memory: number;
  CpuShares: number;
  Lxc: string[] | null;
  Volume: string[] | null;
  Dir: string;
  Entry: string;
  Env: string[] | null;
  Path: string;
  Args: string[] | null;
  Scrub: boolean;
}

/** What `make` takes for each kind; null makes an idle proc or docker element (the mount's mkdir). */
export interface MakeSpec {
  chan: { cap: number };
  proc: ProcCmd | null;
  docker: DockerRun | null;
  dns: { addr?: string };
  '@join': null;
  '@leave': null;
  server: never;
}

/**
 * A lease on a process's stdout or stderr: one at a time. Delivery is exactly once by offset:
 * offsets count from the first byte this lease could read, and reading (or acknowledging, or
 * releasing) at offset N says every byte before N was delivered; bytes from N on stay the
 * stream's. A reader that lost an answer reads at the same offset again; one that goes away
 * leaves what it did not acknowledge to the next reader.
 */
/**
 * What lendPipe lends: a local pipe's descriptor, or a data connection from the stream's home
 * (src/node/push.ts) whose borrower writes back, as it passes bytes on, the offset up to which it
 * did (from ackAt, the lend's offset, on).
 */
export type LentPipe = number | { fd: number; ackAt: number };

/** A data connection for a lease (OutputReader.openPush). */
export interface PushChannel {
  /** The connection's descriptor, the caller's to own and close. */
  fd: number;
  /** Asks the home to push from where the lease's reads ended; resolves with the stream's end offset once it ended. */
  run(signal: AbortSignal): Promise<number>;
}

export interface OutputReader {
  /**
   * Up to max bytes from offset at (default: the end of the previous read, which acknowledges
   * it), waiting until at least one is there; null at end of stream. An aborted read takes
   * nothing.
   */
  read(max: number, opts?: CallOptions, at?: number): Promise<Buffer | null>;
  /**
   * The same read when it need not wait: copies up to max bytes from offset at into `into` and
   * returns their count, or null at the end of the stream; undefined when no byte is here yet
   * (or the read would fail): then read() is the way. Optional: a reader may not have it.
   */
  readNow?(into: Buffer, max: number, at: number): number | null | undefined;
  /**
   * For reads kept in flight across a connection (src/node/read-ahead.ts): acknowledges the
   * bytes before ack (when given), then up to max bytes from where the previous read ended,
   * acknowledging none; [their offset, bytes], bytes null at the end. Such reads are served one
   * after another in the order asked. Optional: a reader may not have it.
   */
  readAhead?(max: number, opts?: CallOptions, ack?: number): Promise<[number, Buffer | null]>;
  /**
   * A data connection on which the home pushes the stream raw (src/node/push.ts), or undefined
   * where it cannot (a keyed cluster). Optional: only a lease across a TCP connection has it.
   */
  openPush?(): Promise<PushChannel | undefined>;
  /**
   * The producer's pipe, lent to a reader that reads it itself (the mount's FUSE thread: docs/fs.md,
   * "Reading output at the pipe") while nothing of the stream is buffered past at, the end of its
   * last read; undefined when it cannot be lent now. Until reclaim, nothing else reads the pipe;
   * `revoke` is called when the stream needs it back first (its end, say), and must call reclaim.
   * Optional: only a local stream whose producer is the output pump has it, and a stream of
   * another server pushed over a data connection (src/node/push.ts), whose socket it lends.
   */
  lendPipe?(at: number, revoke: () => void): LentPipe | undefined;
  /**
   * The lent pipe is back: count bytes were read from it and delivered, the last keep.length of
   * them (a copy in keep) not yet acknowledged, as after any read: the reader's offset moves on by
   * count, and keep stays for the next reader if this one never passed it on.
   */
  reclaim?(count: number, keep: Buffer): void;
  /** The bytes before at were delivered (a reader that wrote them out before its next read). */
  ack(at: number): void;
  /** Gives the stream back; bytes from at (default: the end of the last read) stay for the next reader. */
  release(at?: number): Promise<void>;
  /** Gives the stream back with every byte not acknowledged (the reader vanished). */
  abandon(): void;
}

/**
 * A caller's output (a pipe, a socket, a regular file, a terminal), named for copyOutput by its
 * process, descriptor, device and inode: dev and ino as decimal strings (they may pass 2^53).
 * The server finds out its kind itself; a server older than 2026-12-01 takes only pipes and
 * answers 'refused' for the rest.
 */
export interface PipeTarget {
  pid: number;
  fd: number;
  dev: string;
  ino: string;
  /**
   * The caller's pid namespace as `/proc/self/ns/pid` reads (`pid:[4026531836]`), so the server
   * takes pid in its own namespace only (a CLI in a container has other pids). Sent by CLIs
   * since 2026-12-01; without it a server writes only into a pipe, as before.
   */
  pidns?: string;
}

/** A writer on a process's stdin; stdin closes when its last writer closes. */
export interface InputWriter {
  /** Resolves once the bytes are in the process's pipe (or its bounded buffer). */
  write(data: Buffer, opts?: CallOptions): Promise<void>;
  close(): Promise<void>;
}

export interface ServerInfo {
  id: string;
  url: string;
}

export interface Member {
  id: string;
  url: string;
  state: 'alive' | 'suspect' | 'dead' | 'left';
}

/** A message received but not yet acknowledged by its final receiver (Client.recvUnacked). */
export interface Received {
  msg: Buffer;
  /** Nothing to acknowledge: the message was taken from its home in this process (ack does nothing). */
  acked?: boolean;
  /**
   * The id its server gave the message when it came over a connection: the receiver can ask
   * again by it, over a new connection, whether its acknowledgement arrived (src/node/takes.ts).
   */
  id?: number;
  /** The receiver has it: its home forgets it. Resolves once the home confirmed. */
  ack(): Promise<void>;
  /** The receiver could not take it: it goes back first in its channel. */
  giveBack(): Promise<void>;
}

export interface Client {
  /** The server this client talks to. */
  home(): Promise<ServerInfo>;
  /** Children of an anchor, sorted by name; for `/`, the servers in the dial-in server's view. */
  list(path: string, opts?: CallOptions): Promise<Entry[]>;
  /** The kind of element at path (null for none); ENOENT when the anchor does not exist. Never creates. */
  stat(path: string, opts?: CallOptions): Promise<{ kind: Kind | null; children: number }>;
  /** Makes the anchor (and its parents) and keeps it while this client holds it (the mount's mkdir). */
  hold(path: string, opts?: CallOptions): Promise<void>;
  /** Drops a hold; ENOTEMPTY when the anchor has children or an element (the mount's rmdir). */
  unhold(path: string, opts?: CallOptions): Promise<void>;
  /** The element's stat JSON; null for an empty anchor. */
  peek(path: string, opts?: CallOptions): Promise<unknown>;
  /** Makes an element; a kind outside MakeSpec (a plugin's) takes whatever its module parses. */
  make<K extends string>(path: string, kind: K, spec: K extends keyof MakeSpec ? MakeSpec[K] : unknown, opts?: CallOptions): Promise<void>;
  scrub(path: string, opts?: CallOptions): Promise<void>;

  setCap(path: string, cap: number, opts?: CallOptions): Promise<void>;
  send(path: string, msg: Buffer, opts?: CallOptions): Promise<void>;
  /**
   * One message of a channel, or one event of a subscription (its path and a newline). Over a
   * connection, the message is handed over as it arrives and acknowledged one way after: if the
   * connection is lost in that moment, its home may give it back too (at least once). For
   * exactly once, use recvUnacked and hand the message over after ack() resolved.
   */
  recv(path: string, opts?: CallOptions): Promise<Buffer>;
  /** send that never waits: EAGAIN when the channel has no room and no waiting receiver. */
  trysend(path: string, msg: Buffer, opts?: CallOptions): Promise<void>;
  /** recv that never waits: EAGAIN when nothing is there. Acknowledged as recv (tryrecvUnacked for exactly once). */
  tryrecv(path: string, opts?: CallOptions): Promise<Buffer>;
  close(path: string, opts?: CallOptions): Promise<void>;
  /** Puts a received message (or event) back first: its receiver vanished before it got it. */
  unrecv?(path: string, msg: Buffer): Promise<void>;
  /**
   * recv whose message stays its home's until ack() (resolves once the home forgot it) or goes
   * back first with giveBack(); if this client's connection, or a server in the middle, ends
   * first, the home puts it back. So a message is delivered once end to end.
   */
  recvUnacked?(path: string, opts?: CallOptions): Promise<Received>;
  /** tryrecv whose message stays its home's until ack(), like recvUnacked (EAGAIN when none). */
  tryrecvUnacked?(path: string, opts?: CallOptions): Promise<Received>;

  /** Starts an idle proc or docker element. */
  start(path: string, cmd: ProcCmd | DockerRun, opts?: CallOptions): Promise<void>;
  signal(path: string, sig: string, opts?: CallOptions): Promise<void>;
  wait(path: string, opts?: CallOptions): Promise<unknown>;
  /** A process's or container's environment, one NAME=VALUE a string. */
  env(path: string, opts?: CallOptions): Promise<string[]>;
  openInput(path: string, opts?: CallOptions): Promise<InputWriter>;
  openOutput(path: string, which: 'stdout' | 'stderr', opts?: CallOptions): Promise<OutputReader>;
  /**
   * Has the server write an output stream into an output of the caller's (the CLI's stdout),
   * which the server reaches itself, found by the caller's pid and descriptor and checked against
   * the file's identity; resolves with the count written once the stream ended, or 'refused'
   * when the server cannot write there (another host, not that file, no permission, no add-on
   * for a socket or file: copy it through openOutput instead). Ending the call (a cancel, the connection gone) stops the copy between
   * two writes, and the stream goes back at exactly what was written (src/node/pipe-out.ts).
   * Optional: only a client connected to a server has it.
   */
  copyOutput?(path: string, which: 'stdout' | 'stderr', target: PipeTarget, opts?: CallOptions): Promise<number | 'refused'>;
  /**
   * recv, with the server writing the message into the caller's output (as copyOutput) once its
   * home forgot it (confirmed): resolves with the message's length, or 'refused' as copyOutput. Optional.
   */
  recvTo?(path: string, target: PipeTarget, opts?: CallOptions): Promise<number | 'refused'>;

  /** DNS: add (or with replace, replace all) records given in zone-file syntax, one a line. */
  dnsSet(path: string, records: string, replace: boolean, opts?: CallOptions): Promise<void>;
  dnsUnset(path: string, name: string, opts?: CallOptions): Promise<void>;
  dnsRebind(path: string, addr: string, opts?: CallOptions): Promise<void>;

  /** Server element: this server's membership view. */
  members(path: string, opts?: CallOptions): Promise<Member[]>;
  join(path: string, url: string, opts?: CallOptions): Promise<void>;
  stop(path: string, opts?: CallOptions): Promise<void>;
  /** Server element: the operations log (JSON lines). */
  log(path: string, opts?: CallOptions): Promise<Buffer>;
  /** Server element: the daemon's report (stacks, pending operations, handles, loop delay, heap). */
  stk(path: string, opts?: CallOptions): Promise<string>;

  /**
   * list, stat and peek answered in the call itself where this client can (a server in the same
   * process, for its own anchors and elements): the value, or a promise where it must wait. Same
   * answers and errors as the forms above, thrown where those reject. The mount uses them to
   * answer a request in the turn it arrives.
   */
  listNow?(path: string, opts?: CallOptions): Now<Entry[]>;
  statNow?(path: string, opts?: CallOptions): Now<{ kind: Kind | null; children: number }>;
  peekNow?(path: string, opts?: CallOptions): Now<unknown>;

  /** Ends this client; a remote client's holds and leases are released by its server. */
  disconnect(): Promise<void>;
}
