/**
 * Helpers for membership simulations: a cluster of members over one MemNetwork, each with a
 * seeded PRNG and a clock that can be paused (a SIGSTOP'd process: its timers do not run).
 */
import type { Clock, TimerHandle } from '../../src/kit/clock';
import { Membership, type Member } from '../../src/cluster/membership';
import type { MembershipConfig } from '../../src/cluster/membership-config';
import { MemNetwork, seededRandom } from '../../src/cluster/transport-mem';

/** A view of a shared clock whose timers wait while paused, then fire on resume. */
export class PausableClock implements Clock {
  readonly #base: Clock;
  #paused = false;
  #held: Array<() => void> = [];
  constructor(base: Clock) {
    this.#base = base;
  }
  now(): number {
    return this.#base.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.#base.setTimeout(() => (this.#paused ? this.#held.push(fn) : fn()), ms);
  }
  clearTimeout(h: TimerHandle | undefined): void {
    this.#base.clearTimeout(h);
  }
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    this.#paused = false;
    const held = this.#held;
    this.#held = [];
    for (const fn of held) this.#base.setTimeout(fn, 0);
  }
}

export function memberId(i: number): string {
  return 'X' + i.toString(16).padStart(16, '0');
}

export interface SimMember {
  m: Membership;
  clock: PausableClock;
  addr: string;
  events: Array<{ t: number; event: 'join' | 'leave' | 'update'; member: Member }>;
}

export interface Sim {
  net: MemNetwork;
  members: SimMember[];
  logs: string[];
  add(i: number): SimMember;
}

/** Creates members 0..n-1 (not joined). `record` keeps join/leave events (memory!). */
export function makeSim(
  clock: Clock & { advance(ms: number): void },
  n: number,
  config: Partial<MembershipConfig>,
  opts: { loss?: number; latency?: number; jitter?: number; seed?: number; record?: boolean } = {},
): Sim {
  const net = new MemNetwork({ clock, loss: opts.loss, latency: opts.latency ?? 1, jitter: opts.jitter, seed: opts.seed ?? 7 });
  const logs: string[] = [];
  const sim: Sim = {
    net,
    members: [],
    logs,
    add(i: number): SimMember {
      const pc = new PausableClock(clock);
      const addr = `10.0.${i >> 8}.${i & 255}:7946`;
      const t = net.transport(addr);
      const m = new Membership({
        id: memberId(i),
        url: `circuit://10.0.${i >> 8}.${i & 255}:11022/${1000 + i}/Q${i.toString(16).padStart(16, '0')}`,
        transport: t,
        clock: pc,
        config,
        random: seededRandom((opts.seed ?? 7) * 100_003 + i),
        log: (level, msg) => {
          if (level !== 'debug') logs.push(`${clock.now()} ${memberId(i)} ${level} ${msg}`);
        },
      });
      const sm: SimMember = { m, clock: pc, addr, events: [] };
      if (opts.record) {
        for (const ev of ['join', 'leave', 'update'] as const) {
          m.on(ev, (member: Member) => sm.events.push({ t: clock.now(), event: ev, member }));
        }
      }
      sim.members[i] = sm;
      return sm;
    },
  };
  for (let i = 0; i < n; i++) sim.add(i);
  return sim;
}

/** Advances in steps until pred() holds; returns the time it took, or -1 after maxMs. */
export function advanceUntil(clock: { advance(ms: number): void; now(): number }, pred: () => boolean, maxMs: number, step = 50): number {
  const start = clock.now();
  while (clock.now() - start <= maxMs) {
    if (pred()) return clock.now() - start;
    clock.advance(step);
  }
  return pred() ? clock.now() - start : -1;
}

/** Lets promise continuations (join results) run between clock steps. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** True if every listed member sees exactly the expected set of live ids. */
export function viewsAre(ms: SimMember[], expected: Set<string>): boolean {
  for (const s of ms) {
    if (s.m.size !== expected.size) return false;
    for (const id of expected) {
      const x = s.m.member(id);
      if (!x || (x.state !== 'alive' && x.state !== 'suspect')) return false;
    }
  }
  return true;
}
