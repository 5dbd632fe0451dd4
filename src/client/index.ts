/**
 * The client library's entry: the Client API's types (from src/api, the vocabulary every layer
 * shares), `connect` for a connection to any server, and LocalClient for code inside a daemon.
 */
export type * from '../api/types';
export { connect, RemoteClient, type RemoteOptions } from './remote';
export { LocalClient } from './local';
