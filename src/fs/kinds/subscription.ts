import { doc, type FileSpec } from '../files/control';
import { oneShot } from '../files/one-shot';
import { takenAtRead } from '../files/snapshot';
import { eventStream, recvOrGiveBack, tryrecvAcked } from '../files/stream';
import { peek } from '../files/element';

/** The files of @join and @leave (docs/fs.md): events are server paths, one a line. */
export const subscription: readonly FileSpec[] = [
  doc('one open-read receives one event; the read waits for it', oneShot('recv', recvOrGiveBack)),
  doc('one event, or EAGAIN at once when there is none', takenAtRead('tryrecv', tryrecvAcked)),
  doc('every event as it comes, one a line, never ending', eventStream('events')),
  peek,
];
