// A bare HTTP client for the bad-input suite: sends exactly the bytes and headers given
// (no content type added, no body re-encoding) to a real listening server.
import http from 'node:http';

export interface Answer {
  status: number;
  text: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export function send(base: string, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function closeClient(): void {
  agent.destroy();
}

/** The JSON error body of a 4xx, or a description of what is wrong with the answer. */
export function clearError(answer: Answer): string | undefined {
  if (answer.status < 400 || answer.status >= 500) return undefined;
  try {
    const body = JSON.parse(answer.text) as { error?: unknown };
    return typeof body.error === 'string' && body.error.trim() !== '' ? body.error : undefined;
  } catch {
    return undefined;
  }
}
