import { AppError } from '../../kit/errors';
import { doc, readWrite, type FileSpec } from '../files/control';
import { eachLine, lineCommand, trigger } from '../files/line-command';
import { message, tryMessage } from '../files/message';
import { oneShot } from '../files/one-shot';
import { takenAtRead } from '../files/snapshot';
import { recvOrGiveBack, tryrecvAcked } from '../files/stream';
import { peek, peekField } from '../files/element';

/** A channel's files (docs/fs.md, `chan`). */
export const chan: readonly FileSpec[] = [
  doc('capacity: read it; write a number to set it before first use', readWrite(
    'cap',
    peekField('Cap'),
    lineCommand(
      'cap',
      eachLine(async (l, c) => {
        if (!/^\d+$/.test(l)) throw new AppError('EINVAL', `capacity must be a non-negative integer, got ${JSON.stringify(l)}`);
        await c.client.setCap(c.anchor, Number(l), c.call);
      }),
    ),
  )),
  doc('one open-write-close sends one message; close waits until the channel takes it', message('send')),
  doc('each write is one message, or fails with EAGAIN at once when there is no room and no waiting receiver', tryMessage('trysend')),
  doc('one open-read receives one message; the read waits for it', oneShot('recv', recvOrGiveBack)),
  doc('one message, or EAGAIN at once when there is none', takenAtRead('tryrecv', tryrecvAcked)),
  doc('any write closes the channel; receivers drain what is buffered', trigger('close', (c) => c.client.close(c.anchor, c.call))),
  peek,
];
