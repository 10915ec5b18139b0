// HTTP/2's own floor for bench:serve: a bare node:http2 server, in a process of its own, that
// answers any unary gRPC call with a fixed one-row ModelInferResponse and status OK, with no
// gRPC library. Beside the server's no-op grpc-js method (MLDEPLOY_SERVE_NOOP_ROUTE) it shows
// what the library costs per call. Prints its address, then serves until killed.
//
//   node --import tsx bench/http2-floor.ts
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

function serve(): void {
  const message = Buffer.from([0x0a, 0x04, 0x6e, 0x6f, 0x6f, 0x70]); // ModelInferResponse { model_name: "noop" }
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`127.0.0.1:${(server.address() as AddressInfo).port}\n`));
}

/** Starts the floor in a child process (h2load runs synchronously in the bench's own). */
export function startHttp2Floor(): Promise<{ address: string; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) =>
      resolve({
        address: d.toString().trim(),
        close: () =>
          new Promise((done) => {
            child.once('exit', () => done());
            child.kill();
          }),
      }),
    );
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) serve();
