/**
 * Exit codes, in one place: what a script calling `captioner` can rely on.
 *   0  success
 *   1  the work ran but something failed (e.g. some images could not be captioned)
 *   2  bad usage or configuration (unknown flag, wrong type, missing option)
 *   3  bad input: a data set, model directory or file that cannot be read as what it claims to be
 *   4  the requested backend is not available
 *   5  the job queue's Redis server cannot be reached
 *   130 interrupted (SIGINT) after saving what could be saved
 */
import { BackendError } from '../model/runtime/backend.ts';
import { CheckpointError } from '../model/io/checkpoint.ts';
import { ConfigError } from '../model/util/config.ts';
import { DatasetError } from '../model/data/dataset.ts';
import { ImageError } from '../model/data/image.ts';
import { DecodeOptionsError } from '../model/decode/decode.ts';
import { PriorError } from '../model/decode/prior.ts';
import { RecordFileError } from '../batch/records.ts';
import { CocoFileError } from '../eval/coco-files.ts';
import { ShardError } from '../batch/shard.ts';
import { QueueConnectionError, QueueUrlError } from '../queue/connection.ts';
import { ExperimentDirError } from '../experiment/results.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, input: 3, backend: 4, unavailable: 5, interrupted: 130 } as const;

/** A usage error raised by the CLI layer itself. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function exitCodeFor(err: unknown): number {
  if (
    err instanceof ConfigError ||
    err instanceof UsageError ||
    err instanceof DecodeOptionsError ||
    err instanceof QueueUrlError ||
    err instanceof ShardError
  )
    return EXIT.usage;
  if (
    err instanceof DatasetError ||
    err instanceof CheckpointError ||
    err instanceof ImageError ||
    err instanceof RecordFileError ||
    err instanceof CocoFileError ||
    err instanceof PriorError ||
    err instanceof ExperimentDirError
  )
    return EXIT.input;
  if (err instanceof BackendError) return EXIT.backend;
  if (err instanceof QueueConnectionError) return EXIT.unavailable;
  return EXIT.failed;
}
