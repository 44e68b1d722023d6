/**
 * HTTP/1.1 over a bare socket on 127.0.0.1, for what an HTTP client library hides: an interim
 * `100 Continue`, a status read while the body is still being written, a body that ends
 * without its terminating chunk.
 */
import { connect, type Socket } from 'node:net';

export interface RawExchange {
  socket: Socket;
  /** Everything read so far, as latin1 text. */
  received(): string;
  /** Resolves once `text` has been read. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with everything read once the server has closed the connection. */
  closed: Promise<string>;
}

export function rawExchange(port: number, head: string): RawExchange {
  const socket = connect(port, '127.0.0.1');
  let got = '';
  const waiters = new Set<() => void>();
  socket.on('data', (d: Buffer) => {
    got += d.toString('latin1');
    for (const w of waiters) w();
  });
  // A server that stops reading our body makes writes fail; what it answered is still read.
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.on('close', () => {
    for (const w of waiters) w();
    resolve(got);
  }));
  socket.write(head);
  return {
    socket,
    received: () => got,
    closed,
    waitFor: (text, timeoutMs = 5000) => new Promise<string>((resolve, reject) => {
      const found = (): boolean => (typeof text === 'string' ? got.includes(text) : text.test(got));
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`did not read ${String(text)} within ${timeoutMs} ms; read: ${got.slice(0, 300)}`));
      }, timeoutMs);
      const check = (): void => {
        if (found()) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(got);
        } else if (socket.destroyed) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`connection closed before ${String(text)}; read: ${got.slice(0, 300)}`));
        }
      };
      waiters.add(check);
      check();
    }),
  };
}

/** Writes `total` bytes of spaces as chunks, with backpressure, until done or the socket fails. */
export async function writeChunked(socket: Socket, total: number, chunkSize = 64 * 1024): Promise<void> {
  const chunk = Buffer.alloc(chunkSize, 0x20);
  const framed = Buffer.concat([Buffer.from(`${chunkSize.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  for (let sent = 0; sent < total && !socket.destroyed; sent += chunkSize) {
    if (!socket.write(framed)) {
      await new Promise<void>((resolve) => {
        socket.once('drain', resolve);
        socket.once('close', resolve);
      });
    }
  }
  if (!socket.destroyed) socket.write('0\r\n\r\n');
}

/** The status of the first response in `text` (100 for an interim one). */
export function firstStatus(text: string): number | undefined {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** The JSON body of the last response in `text`. */
export function lastJsonBody(text: string): Record<string, unknown> {
  const start = text.lastIndexOf('\r\n\r\n');
  return JSON.parse(text.slice(start + 4)) as Record<string, unknown>;
}
