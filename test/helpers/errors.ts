/** Asserting on FaceganErrors. */
import { expect } from 'vitest';
import { FaceganError } from '../../lib/errors.js';

/** The code of the FaceganError that `fn` throws ('no error' when it returns); any other error fails. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FaceganError);
    return (err as FaceganError).code;
  }
  return 'no error';
}

/** Expects `p` (or the call) to reject/throw a FaceganError with `code` and a message matching `message`. */
export async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, message?: RegExp): Promise<FaceganError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a FaceganError ${code}`).toBeInstanceOf(FaceganError);
  expect((err as FaceganError).code).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
  return err as FaceganError;
}
