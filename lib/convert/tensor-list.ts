/**
 * The weight format's tensors for a config — names, shapes, canonical order — from its one
 * definition, the engine's (`expected_tensors` in native/core/network.cc, which the addon exports
 * as `expectedTensors`). The checkpoint readers, the converter and the ONNX exporter take their
 * lists from here, so they need the addon like every other call of this package (README, Install).
 */
import { FaceganError } from '../errors.js';
import { native } from '../native.js';

interface EngineTensor {
  name: string;
  shape: number[];
  optional: boolean;
}

/**
 * The tensors of a config: `required` (name → shape, in canonical order: the order of a facegan
 * file) and `optional` (allowed, never required: StyleGAN2's standard `resample_filter` buffers).
 */
export interface TensorList {
  readonly required: Map<string, number[]>;
  readonly optional: Map<string, number[]>;
}

/**
 * The engine's list for a config that has passed the converter's own config checks.
 * @throws FaceganError ERR_CORRUPT_FILE with the engine's reason if the engine refuses the config;
 *   ERR_NATIVE if no addon can be loaded.
 */
export function engineTensorList(config: object): TensorList {
  const addon = native() as unknown as { expectedTensors(configJson: string): EngineTensor[] };
  let list: EngineTensor[];
  try {
    list = addon.expectedTensors(JSON.stringify(config));
  } catch (err) {
    throw new FaceganError('ERR_CORRUPT_FILE', `Invalid generator config: ${(err as Error).message}`, { cause: err });
  }
  const required = new Map<string, number[]>();
  const optional = new Map<string, number[]>();
  for (const t of list) (t.optional ? optional : required).set(t.name, t.shape);
  return { required, optional };
}
