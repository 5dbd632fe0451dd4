/** Small stdin/stdout helpers for the CLI. */
export async function readAll(stream: NodeJS.ReadableStream = process.stdin): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

/** Writes and waits for the stream to take it (back-pressure), failing if stdout is gone. */
export function writeOut(data: Buffer | string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = out.write(data, (e) => (e ? reject(e) : undefined));
    if (ok) resolve();
    else out.once('drain', resolve);
  });
}

export function json(v: unknown): string {
  return JSON.stringify(v, null, '\t') + '\n';
}
