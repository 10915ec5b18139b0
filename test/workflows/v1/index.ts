// The old worker's workflows (see batch-scoring.ts here).
export { batchScoring } from './batch-scoring.ts';
