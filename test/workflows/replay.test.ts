// Replays every recorded workflow history in test/fixtures/histories against today's
// workflow code: a change that would break a running workflow (a different command sequence
// without patched()) fails here. No server needed. Record or refresh the fixtures with
// `node --import tsx scripts/record-histories.ts` (see its header).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

const HISTORIES = path.resolve('test/fixtures/histories');
const WORKFLOWS_PATH = path.resolve('workflows/index.ts');
const History = temporal.api.history.v1.History;

function workflowType(history: temporal.api.history.v1.IHistory): string {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
}

const recorded = fs
  .readdirSync(HISTORIES)
  .filter((f) => f.endsWith('.pb'))
  .sort()
  .map((f) => ({ workflowId: f, history: History.decode(fs.readFileSync(path.join(HISTORIES, f))) }));

describe('recorded histories', () => {
  it('cover every workflow the worker runs', async () => {
    const exported = Object.keys(await import('../../workflows/index.ts'));
    const types = new Set(recorded.map((r) => workflowType(r.history)));
    // A workflow listed here has its history recorded by scripts/record-histories.ts.
    expect(exported.filter((name) => !types.has(name) && !NOT_YET_RECORDED.has(name))).toEqual([]);
  });

  it('replay on the current workflow code without non-determinism', async () => {
    expect(recorded.length).toBeGreaterThanOrEqual(4);
    const results = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH, replayName: 'recorded' }, recorded)) results.push(result);
    expect(results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error}`)).toEqual([]);
    expect(results).toHaveLength(recorded.length);
  });
});

/** Workflows whose history the lead records once they land (remove the name when its .pb is committed). */
const NOT_YET_RECORDED = new Set<string>([]);
