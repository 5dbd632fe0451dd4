import fs = require('node:fs');
import path = require('node:path');

/**
 * The package's root folder (where package.json is), from code compiled into dist/src/… by tsc
 * or bundled into dist/circuit.js: the two put __dirname at different depths.
 */
export function packageRoot(from = __dirname): string {
  let d = from;
  while (!fs.existsSync(path.join(d, 'package.json')) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}
