// The model URIs `mldeploy models import` accepts, as MLflow spells them.
import fs from 'node:fs';
import path from 'node:path';

export type ModelSource =
  | { kind: 'alias'; name: string; alias: string }
  | { kind: 'version'; name: string; version: number }
  | { kind: 'logged'; modelId: string }
  | { kind: 'run'; runId: string; artifactPath: string }
  | { kind: 'local'; dir: string };

export class MlflowUriError extends Error {
  override name = 'MlflowUriError';
}

const FORMS = 'models:/<name>@<alias>, models:/<name>/<version>, runs:/<run-id>/<artifact-path> or a local directory with an MLmodel file';

export function parseModelSource(uri: string): ModelSource {
  if (uri.startsWith('models:/')) {
    const rest = uri.slice('models:/'.length);
    const at = rest.lastIndexOf('@');
    if (at > 0) {
      const alias = rest.slice(at + 1);
      if (!alias || alias.includes('/')) throw new MlflowUriError(`${JSON.stringify(uri)} has no alias after '@' (use ${FORMS})`);
      return { kind: 'alias', name: rest.slice(0, at), alias };
    }
    if (/^m-[0-9a-f]+$/.test(rest)) return { kind: 'logged', modelId: rest };
    const slash = rest.lastIndexOf('/');
    const tag = rest.slice(slash + 1);
    if (slash > 0 && /^\d+$/.test(tag) && Number(tag) > 0) return { kind: 'version', name: rest.slice(0, slash), version: Number(tag) };
    throw new MlflowUriError(`${JSON.stringify(uri)} names no version or alias (use ${FORMS})`);
  }
  if (uri.startsWith('runs:/')) {
    const match = /^runs:\/([0-9a-zA-Z]+)\/(.+)$/.exec(uri);
    if (!match) throw new MlflowUriError(`${JSON.stringify(uri)} is not runs:/<run-id>/<artifact-path>`);
    return { kind: 'run', runId: match[1], artifactPath: match[2].replace(/\/+$/, '') };
  }
  const dir = path.resolve(uri.startsWith('file://') ? new URL(uri).pathname : uri);
  if (fs.existsSync(path.join(dir, 'MLmodel'))) return { kind: 'local', dir };
  if (fs.existsSync(dir)) throw new MlflowUriError(`${dir} has no MLmodel file: it is not an MLflow model directory`);
  throw new MlflowUriError(`${JSON.stringify(uri)} is not an MLflow model URI (use ${FORMS})`);
}
