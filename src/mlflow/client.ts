// A small client for the MLflow tracking server's REST API (model registry, runs, logged
// models) and its artifact proxy. Credentials come from MLflow's own variables and never
// appear in what is returned or stored.
import http from 'node:http';
import https from 'node:https';

export interface MlflowSettings {
  trackingUri?: string;
  token?: string;
  username?: string;
  password?: string;
  insecureTls: boolean;
}

export class MlflowError extends Error {
  override name = 'MlflowError';
}

/** The tracking server could not be reached: nothing is known about the model yet. */
export class MlflowUnreachableError extends MlflowError {
  override name = 'MlflowUnreachableError';
}

export interface RegisteredVersion {
  name: string;
  version: string;
  source: string;
  run_id?: string;
  status?: string;
}

export interface LoggedModelInfo {
  model_id: string;
  name: string;
  artifact_uri: string;
  source_run_id?: string;
}

export interface RunInfo {
  info: { run_id: string; artifact_uri: string };
  outputs?: { model_outputs?: Array<{ model_id: string }> };
}

const TIMEOUT_MS = 30_000;

/** OpenSSL's verification failures as Node reports them: a certificate problem, not an unreachable server. */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export class MlflowClient {
  /** The tracking URI without credentials: what provenance records. */
  readonly trackingUri: string;
  private readonly base: URL;
  private readonly authorization?: string;

  constructor(private readonly settings: MlflowSettings) {
    if (!settings.trackingUri) throw new MlflowError('MLFLOW_TRACKING_URI is not set: point it at the MLflow tracking server (for example http://127.0.0.1:5000)');
    let url: URL;
    try {
      url = new URL(settings.trackingUri);
    } catch {
      throw new MlflowError(`MLFLOW_TRACKING_URI=${JSON.stringify(settings.trackingUri)} is not a URL: use http(s)://host:port of the tracking server`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new MlflowError(`MLFLOW_TRACKING_URI uses ${url.protocol}; mldeploy talks to a tracking server over http(s)://host:port`);
    }
    const user = settings.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
    const password = settings.password ?? (url.password ? decodeURIComponent(url.password) : '');
    if (settings.token) this.authorization = `Bearer ${settings.token}`;
    else if (user) this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    url.username = '';
    url.password = '';
    this.base = url;
    this.trackingUri = url.toString().replace(/\/+$/, '');
  }

  versionByAlias(name: string, alias: string): Promise<RegisteredVersion> {
    return this.json<{ model_version: RegisteredVersion }>('/api/2.0/mlflow/registered-models/alias', { name, alias }).then((r) => r.model_version);
  }

  version(name: string, version: number): Promise<RegisteredVersion> {
    return this.json<{ model_version: RegisteredVersion }>('/api/2.0/mlflow/model-versions/get', { name, version: String(version) }).then((r) => r.model_version);
  }

  downloadUri(name: string, version: string): Promise<string> {
    return this.json<{ artifact_uri: string }>('/api/2.0/mlflow/model-versions/get-download-uri', { name, version }).then((r) => r.artifact_uri);
  }

  run(runId: string): Promise<RunInfo> {
    return this.json<{ run: RunInfo }>('/api/2.0/mlflow/runs/get', { run_id: runId }).then((r) => r.run);
  }

  loggedModel(modelId: string): Promise<LoggedModelInfo> {
    return this.json<{ model: { info: LoggedModelInfo } }>(`/api/2.0/mlflow/logged-models/${encodeURIComponent(modelId)}`, {}).then((r) => r.model.info);
  }

  /** One file of an `mlflow-artifacts:` location, through the server's artifact proxy; undefined when it does not exist. */
  async artifact(artifactUri: string, file: string): Promise<Buffer | undefined> {
    const location = new URL(artifactUri).pathname.replace(/^\/+/, '').replace(/\/+$/, '');
    const encoded = `${location}/${file}`.split('/').map(encodeURIComponent).join('/');
    const { status, body } = await this.request(`/api/2.0/mlflow-artifacts/artifacts/${encoded}`, {});
    if (status === 404) return undefined;
    if (status !== 200) throw this.failure(status, body);
    return body;
  }

  private async json<T>(path: string, query: Record<string, string>): Promise<T> {
    const { status, body } = await this.request(path, query);
    if (status !== 200) throw this.failure(status, body);
    try {
      return JSON.parse(body.toString('utf8')) as T;
    } catch {
      throw new MlflowError(`${this.trackingUri} answered ${path} with something other than JSON: is MLFLOW_TRACKING_URI an MLflow tracking server?`);
    }
  }

  private failure(status: number, body: Buffer): MlflowError {
    if (status === 401 || status === 403) {
      return new MlflowError(
        `the MLflow tracking server at ${this.trackingUri} refused the request (HTTP ${status}): check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD`,
      );
    }
    let message = body.toString('utf8').slice(0, 300);
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the text
    }
    return new MlflowError(`MLflow (${this.trackingUri}) answered HTTP ${status}: ${message.split('\n')[0]}`);
  }

  private request(path: string, query: Record<string, string>): Promise<{ status: number; body: Buffer }> {
    const url = new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.get(
        url,
        { headers: this.authorization ? { authorization: this.authorization } : {}, timeout: TIMEOUT_MS, rejectUnauthorized: !this.settings.insecureTls },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code && CERTIFICATE_ERRORS.has(err.code)) {
          reject(
            new MlflowError(
              `the MLflow tracking server at ${this.trackingUri} presented a TLS certificate that cannot be verified (${err.code}: ${err.message}): ` +
                'give Node its CA with NODE_EXTRA_CA_CERTS=<ca.pem>, or set MLFLOW_TRACKING_INSECURE_TLS=true to skip verification',
            ),
          );
        } else reject(new MlflowUnreachableError(`cannot reach the MLflow tracking server at ${this.trackingUri} (${err.code ?? err.message}): check MLFLOW_TRACKING_URI`));
      });
    });
  }
}
