/**
 * TLS 1.3 with an external pre-shared key, for handshake.ts. Kept apart so that a keyless
 * process never loads node:tls.
 */
import tls = require('node:tls');
import type * as net from 'node:net';
import { PSK_IDENTITY, TLS_CIPHERS, type Role } from './handshake';

const common = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: TLS_CIPHERS,
  ecdhCurve: 'X25519',
} as const;

let serverContext: tls.SecureContext | undefined;

/** Starts TLS on a connected socket; the caller waits for 'secureConnect' or 'secure'. */
export function startTls(sock: net.Socket, psk: Buffer, role: Role): tls.TLSSocket {
  if (role === 'dialer') {
    return tls.connect({
      ...common,
      socket: sock,
      // No certificates: the PSK authenticates the server; skip the host name check.
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
    });
  }
  serverContext ??= tls.createSecureContext({ ...common, honorCipherOrder: true } as tls.SecureContextOptions);
  return new tls.TLSSocket(sock, {
    isServer: true,
    secureContext: serverContext,
    pskCallback: (_s: tls.TLSSocket, identity: string) => (identity === PSK_IDENTITY ? psk : null),
  } as tls.TLSSocketOptions);
}
