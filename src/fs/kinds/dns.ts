import { AppError, E } from '../../kit/errors';
import { LINE_MAX, SPEC_MAX } from '../../api/limits';
import { parseRecord, ZoneError } from '../../node/zone';
import { doc, readWrite, type Ctx, type FileSpec } from '../files/control';
import { eachLine, lineCommand } from '../files/line-command';
import { oneWord, peek, peekField } from '../files/element';

/** A DNS element's records (peek's name → lines map) as zone-file lines. */
function zoneText(v: unknown): string {
  if (!v || typeof v !== 'object') return '';
  return Object.values(v as Record<string, unknown>)
    .flatMap((rrs) => (Array.isArray(rrs) ? rrs : []))
    .map((rr) => `${String(rr)}\n`)
    .join('');
}

/**
 * `records` for writing: the text of one open is one request, all or nothing, so that a `>` of
 * five lines with one bad line changes nothing. Shells write line by line (bash's stdout is
 * line-buffered), so a write only checks the lines it completes (numbered from the open's first
 * line); a bad one fails that write and spoils the open. A close applies what was written since
 * the last one: `>` (truncated) replaces all records, `>>` adds. A shell's `>` closes its first
 * descriptor before writing (dup2), so an empty `>` (`: > records` empties them) is applied at
 * the last close (release) when nothing else was. The first write also asks the element for an
 * empty add, so a missing element fails there, as for any other control file.
 */
function recordsWriter(): FileSpec {
  return {
    name: 'records',
    mode: 'w',
    blocking: false,
    open(flags) {
      let text = '';
      let checked = 0; // chars of text already checked
      let lineNo = 0;
      let truncated = (flags & O_TRUNC) !== 0;
      let spoilt: unknown = null;
      let runs = 0;
      let probed = false;
      const apply = async (c: Ctx) => {
        const t = text;
        text = '';
        checked = 0;
        lineNo = 0;
        await c.client.dnsSet(c.anchor, t, truncated && runs++ === 0, c.call);
      };
      return {
        async write(data, c) {
          if (spoilt) throw spoilt;
          try {
            if (!probed) await c.client.dnsSet(c.anchor, '', false, c.call);
            probed = true;
            text += data.toString('utf8');
            const end = text.lastIndexOf('\n');
            // bounded: one line LINE_MAX, the whole text of the open SPEC_MAX (docs/fs.md)
            const lines = end < checked ? [] : text.slice(checked, end).split(/\r\n|\n|\r/);
            if (text.length - Math.max(checked, end + 1) > LINE_MAX || lines.some((l) => l.length > LINE_MAX)) throw E.inputTooLarge('line', LINE_MAX);
            if (text.length > SPEC_MAX) throw E.inputTooLarge('records', SPEC_MAX);
            for (const l of lines) parseRecord(l, ++lineNo);
            if (end >= checked) checked = end + 1;
          } catch (e) {
            text = '';
            spoilt = e instanceof ZoneError ? new AppError('EINVAL', `set resoure record error: ${e.message}`) : e;
            throw spoilt;
          }
        },
        async flush(c) {
          if (!spoilt && text.trim() !== '') await apply(c);
        },
        async release(c) {
          if (!spoilt && (text.trim() !== '' || (truncated && runs === 0))) await apply(c);
        },
        truncate(size) {
          if (size === 0) truncated = true;
        },
      };
    },
  };
}

const O_TRUNC = 0o1000;

/** A name server's files (docs/dns.md). */
export const dns: readonly FileSpec[] = [
  doc('the address it answers on; write ADDR:PORT to move it', readWrite(
    'address',
    peekField('Address'),
    lineCommand('address', eachLine(async (l, c) => c.client.dnsRebind(c.anchor, oneWord('address', l), c.call))),
  )),
  doc('the records in zone-file syntax; > replaces them all, >> adds', readWrite(
    'records',
    peekField('Records', zoneText),
    recordsWriter(),
  )),
  doc('write a name to remove all its records', lineCommand('unset', eachLine(async (l, c) => c.client.dnsUnset(c.anchor, oneWord('unset', l), c.call)))),
  peek,
];

