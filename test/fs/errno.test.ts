import { constants } from 'os';
import t from 'tap';
import { ERROR_CODES, AppError } from '../../src/kit/errors';
import { toErrno } from '../../src/fs/errno';

t.test('errno: every CircuitError code has its platform errno', async (t) => {
  const errno: Record<string, number> = { EHOSTDOWN: 112, ...constants.errno }; // Node lacks EHOSTDOWN
  for (const code of ERROR_CODES) {
    const logged: string[] = [];
    t.equal(toErrno(new AppError(code, 'x'), (l) => logged.push(l)), -errno[code], code);
    t.same(logged, [], `${code}: not logged as unknown`);
  }
});

t.test('errno: anything else is EIO, never -1', async (t) => {
  const logged: string[] = [];
  t.equal(toErrno(new Error('boom'), (l) => logged.push(l)), -constants.errno.EIO);
  t.match(logged, [/unexpected failure Error: boom/], 'an unknown failure is logged');
  t.equal(toErrno('weird'), -constants.errno.EIO);
  t.equal(toErrno(Object.assign(new Error('x'), { code: 'ENOENT' })), -constants.errno.ENOENT, 'a node errno code keeps its meaning');
});
