// mldeploy's search attributes: the Web UI filters runs by them. The dev server registers
// them at start; against another cluster, `checkSearchAttributes` verifies they exist.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const JOB = defineSearchAttributeKey('MldeployJob', SearchAttributeType.KEYWORD);
export const MODEL_NAME = defineSearchAttributeKey('MldeployModel', SearchAttributeType.KEYWORD);
export const MODEL_VERSION = defineSearchAttributeKey('MldeployModelVersion', SearchAttributeType.INT);
export const EVENT_TYPE = defineSearchAttributeKey('MldeployEventType', SearchAttributeType.KEYWORD);
export const DECISION_STATUS = defineSearchAttributeKey('MldeployDecisionStatus', SearchAttributeType.KEYWORD);
export const DECISION_ACTION = defineSearchAttributeKey('MldeployDecisionAction', SearchAttributeType.KEYWORD);
/** Batched streaming: the inbound-log partition a partition workflow consumes. */
export const PARTITION = defineSearchAttributeKey('MldeployPartition', SearchAttributeType.INT);

/** Batch runs measured against a reference profile: 'drifted' or 'stable' (docs/monitoring.md). */
export const DRIFT = defineSearchAttributeKey('MldeployDrift', SearchAttributeType.KEYWORD);

/** Set by Temporal on workflows that a Schedule starts (also for backfills): the nominal time. */
export const SCHEDULED_START_TIME = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

export const ALL_SEARCH_ATTRIBUTES = [JOB, MODEL_NAME, MODEL_VERSION, EVENT_TYPE, DECISION_STATUS, DECISION_ACTION, PARTITION, DRIFT];

/** The CLI's spelling of each type, as in `temporal ... --search-attribute Name=Type`. */
export const CLI_TYPE_NAMES: Record<string, string> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.INT]: 'Int',
};
