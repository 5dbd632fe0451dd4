/**
 * Real multi-host clusters on one machine: network namespaces on a private bridge (no address
 * on the host side, so nothing leaves the bridge), each with one veth and one address, and
 * daemons started inside them. Every name carries a per-run tag; `destroy()` removes the
 * processes, namespaces (and their /etc/netns files), veths, bridge and iptables rule it made,
 * and is safe to call twice.
 * Multicast never touches the machine's real interfaces: daemons send on their veth only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAIN, urlOf } from './daemon';

export interface Host {
  ns: string;
  /** The host-side end of its veth: set it down to cut this host off. */
  veth: string;
  addr: string;
}

export interface NsDaemon {
  host: Host;
  url: string;
  id: string;
  proc: ChildProcess;
  stderr: () => string;
  /** Its --var folder (ops.log), removed with the lab. */
  varDir: string;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function quiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // already gone
  }
}

/** True when this process may make namespaces (root with ip and iptables). */
export function netnsAvailable(): boolean {
  try {
    if (process.getuid?.() !== 0) return false;
    sh('ip', ['netns', 'list']);
    sh('iptables', ['-S', 'FORWARD']);
    return true;
  } catch {
    return false;
  }
}

export class Lab {
  readonly tag: string;
  readonly bridge: string;
  readonly hosts: Host[] = [];
  readonly daemons: NsDaemon[] = [];
  readonly subnet: string;
  readonly dir: string;
  #rule = false;
  #destroyed = false;
  readonly #onExit = () => this.destroy();

  constructor(n: number) {
    this.tag = (process.pid % 100000).toString(36) + Math.floor(Math.random() * 36 * 36).toString(36);
    this.bridge = `cb${this.tag}`;
    this.subnet = `10.${200 + (process.pid % 50)}.${Math.floor(Math.random() * 250)}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'circuit-netns-'));
    process.once('exit', this.#onExit);
    try {
      sh('ip', ['link', 'add', this.bridge, 'type', 'bridge', 'mcast_snooping', '0']);
      sh('ip', ['link', 'set', this.bridge, 'up']);
      sh('iptables', ['-I', 'FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT']);
      this.#rule = true;
      for (let i = 1; i <= n; i++) this.#addHost(i);
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  #addHost(i: number): void {
    const ns = `cn${this.tag}${i}`;
    const veth = `cv${this.tag}${i}`;
    const peer = `cp${this.tag}${i}`;
    const addr = `${this.subnet}.${10 + i}`;
    sh('ip', ['netns', 'add', ns]);
    this.hosts.push({ ns, veth, addr });
    sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer]);
    sh('ip', ['link', 'set', peer, 'netns', ns]);
    sh('ip', ['link', 'set', veth, 'master', this.bridge]);
    sh('ip', ['link', 'set', veth, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
    sh('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  }

  /**
   * Gives a host its own /etc/hosts (`ip netns exec` bind-mounts /etc/netns/NS/hosts over
   * /etc/hosts), so a name can resolve to several addresses inside that namespace only.
   */
  hostsFile(h: Host, lines: string[]): void {
    const dir = path.join('/etc/netns', h.ns);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hosts'), ['127.0.0.1 localhost', ...lines, ''].join('\n'));
  }

  /** Cuts (down) or restores (up) a host's link to the bridge. */
  link(h: Host, up: boolean): void {
    sh('ip', ['link', 'set', h.veth, up ? 'up' : 'down']);
  }

  /** Starts `circuit start ARGS` inside a host's namespace and reads its URL and id. */
  async start(h: Host, args: string[], env: NodeJS.ProcessEnv = {}): Promise<NsDaemon> {
    const varDir = fs.mkdtempSync(path.join(this.dir, 'var-'));
    const proc = spawn('ip', ['netns', 'exec', h.ns, process.execPath, MAIN, 'start', '--no-mount', '--var', varDir, '--socket', path.join(varDir, 'control.sock'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CIRCUIT: '', CIRCUIT_DISCOVER: '', ...env },
    });
    let err = '';
    proc.stderr!.on('data', (c) => (err += c));
    const url = await urlOf(proc, () => err);
    for (let i = 0; i < 100 && !/Attaching \/X/.test(err); i++) await new Promise((r) => setTimeout(r, 20));
    const m = /Attaching \/(X[0-9a-f]{16}) as server/.exec(err);
    if (!m) throw new Error(`no attach line: ${err}`);
    const d: NsDaemon = { host: h, url, id: m[1], proc, varDir, stderr: () => err };
    this.daemons.push(d);
    return d;
  }

  /** Runs the CLI inside a host's namespace; resolves when it exits. */
  cli(h: Host, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const p = spawn('ip', ['netns', 'exec', h.ns, process.execPath, MAIN, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CIRCUIT: '', CIRCUIT_DISCOVER: '', ...env },
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (c) => (out += c));
      p.stderr.on('data', (c) => (err += c));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout: out, stderr: err, ms: Date.now() - t0 }));
    });
  }

  /** Removes everything this lab made; idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.removeListener('exit', this.#onExit);
    for (const d of this.daemons) {
      try {
        if (d.proc.pid) process.kill(d.proc.pid, 'SIGCONT');
        d.proc.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    for (const h of this.hosts) {
      let pids: string[] = [];
      try {
        pids = sh('ip', ['netns', 'pids', h.ns]).split(/\s+/).filter(Boolean);
      } catch {
        // no namespace
      }
      for (const pid of pids) quiet('kill', ['-9', pid]);
      quiet('ip', ['link', 'del', h.veth]);
      quiet('ip', ['netns', 'del', h.ns]);
      fs.rmSync(path.join('/etc/netns', h.ns), { recursive: true, force: true });
    }
    if (this.#rule) quiet('iptables', ['-D', 'FORWARD', '-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT']);
    quiet('ip', ['link', 'del', this.bridge]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
