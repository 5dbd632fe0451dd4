import net = require('node:net');
import { handshake } from '../cluster/handshake';
import { Session } from '../cluster/session';
import { dialClient } from './dial';
import { json } from './io';

/**
 * The build's rehearsal of a client command (`circuit peek`) against a stand-in listener on
 * loopback in this process, so that the code V8 compiles for the connect path (the handshake,
 * the session, msgpackr, the client, the answer's JSON) goes into the bundle's code cache
 * (src/cli/launch.ts writeCache) instead of being compiled again by every command. The stand-in
 * answers hello and peek only; nothing leaves the machine. A failure costs only start-up time.
 */
export async function warmConnect(): Promise<void> {
  const id = 'X0000000000000000';
  const sessions: Session[] = [];
  const server = net.createServer((sock) => {
    handshake(sock, null, 'listener').then((s) => {
      const session = new Session(s);
      sessions.push(session);
      session.handler = async (op) => (op === 'hello' ? { id, url: 'circuit://127.0.0.1:1/1/Q0000000000000000' } : { Addr: 'circuit://127.0.0.1:1/1/Q0000000000000000', Joined: new Date(0).toISOString() });
    }, () => sock.destroy());
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
    const client = await dialClient({ dial: `circuit://127.0.0.1:${port}/${process.pid}/Q0000000000000000` });
    json(await client.peek(`/${id}`));
    await client.greeted();
    await client.hangUp();
  } catch {
    // no loopback here: the cache holds less
  } finally {
    for (const s of sessions) s.destroy();
    server.close();
  }
}
