/**
 * What happens on the connection around a request, where Node's and fastify's defaults let a
 * client down:
 *
 * - `Expect: 100-continue`: Node answers `100 Continue` as soon as the headers arrive, so a
 *   client with a wrong key uploads its whole body only to read a 401. Here the `100` is sent
 *   once the route's hooks (key, scope, rate limit) have passed; a refused request is answered
 *   without it, and the body is never asked for.
 * - An answer given before the body was read (413, 408, 401 on an upload): Node closes the
 *   socket with the client's bytes still unread, the kernel then sends a reset, and the client,
 *   still writing, often never reads the status. Such a connection is closed gracefully instead:
 *   the answer, then our half of the connection, then a bounded drain of what the client still
 *   sends, then the close.
 * - Requests Node cannot parse (bad HTTP, headers too large, headers too slow): answered as
 *   `{ code, message }` like every other error, then closed the same way.
 */
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ERROR_TABLE, type OptoutErrorCode } from '../errors.js';
import { hasBody } from './body-timeouts.js';

/** A closing connection reads and drops at most this much of a body it refused. */
const LINGER_BYTES = 16 * 1024 * 1024;
/** ...for at most this long. */
const LINGER_MS = 5_000;

const lingering = new WeakSet<Socket>();

/**
 * Ends our half of the connection once the answer is written, reads and drops what the client
 * still sends (within bounds, so that its socket sees our answer rather than a reset), then
 * closes.
 */
export function lingerClose(socket: Socket): void {
  if (lingering.has(socket) || socket.destroyed) return;
  lingering.add(socket);
  const start = socket.bytesRead;
  const done = (): void => {
    clearInterval(watch);
    clearTimeout(timer);
    socket.destroy();
  };
  // The HTTP parser may read the socket natively (no 'data' events): bytesRead still counts.
  const watch = setInterval(() => {
    if (socket.bytesRead - start > LINGER_BYTES) done();
  }, 50);
  const timer = setTimeout(done, LINGER_MS);
  watch.unref();
  timer.unref();
  socket.once('end', done);
  socket.once('close', done);
  socket.end();
  // Bytes no parser will read any more (after a parse error) are dropped here.
  if (socket.readableFlowing !== true) socket.resume();
}

function expectsContinue(request: FastifyRequest): boolean {
  return /^100-continue$/i.test(request.headers.expect ?? '');
}

/**
 * Wires `Expect: 100-continue` to the route's hooks, and closes gracefully every connection
 * whose request body was not read to its end.
 */
export function manageConnections(app: FastifyInstance): void {
  // With a listener, Node leaves the `100 Continue` to us and passes the request on as usual.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));

  // preParsing runs after every onRequest hook (the key, the scope, the rate limit) and before
  // the body is read: the moment the client may send it.
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.headers.expect !== undefined && expectsContinue(request) && !reply.raw.headersSent) reply.raw.writeContinue();
    done(null, payload);
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    const socket = request.raw.socket;
    if (socket instanceof Socket && hasBody(request) && !request.raw.complete) {
      // The rest of the body will not be read: this connection cannot carry another request.
      void reply.header('connection', 'close');
      closeGracefullyAfterAnswer(socket);
    }
    done(null, payload);
  });
}

/** Node ends a `Connection: close` exchange with `destroySoon()`: that is where the reset came from. */
function closeGracefullyAfterAnswer(socket: Socket): void {
  socket.destroySoon = () => lingerClose(socket);
}

interface ClientError extends Error {
  code?: string;
}

/** The answer to a request Node could not parse, by Node's error code. */
function clientErrorAnswer(code: string | undefined): { code: OptoutErrorCode; message: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW': return { code: 'OPTOUT_ERR_HEADERS_TOO_LARGE', message: 'The request headers are larger than 16 KiB' };
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { code: 'OPTOUT_ERR_REQUEST_TIMEOUT', message: 'The request headers did not arrive in time' };
    default: return { code: 'OPTOUT_ERR_BAD_REQUEST', message: 'The request is not valid HTTP/1.1' };
  }
}

/** fastify's `clientErrorHandler`: Node's `clientError`, answered as `{ code, message }`. */
export function clientErrorHandler(err: ClientError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable || lingering.has(socket)) {
    if (!lingering.has(socket)) socket.destroy();
    return;
  }
  const answer = clientErrorAnswer(err.code);
  const status = ERROR_TABLE[answer.code].http;
  const body = JSON.stringify(answer);
  socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\n` +
    `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  lingerClose(socket);
}
