/**
 * The catalogue of NVIDIA's official StyleGAN2-architecture checkpoints, and `pullModel()` /
 * `resolveModel()`, which download one into the cache and convert it once to safetensors.
 *
 * Every entry is cited (`source`) from NVIDIA's own READMEs or code. `bytes` and `sha256` are
 * given only where a source states them; today none does, so downloads are checked against the
 * server's Content-Length only (see docs/models.md).
 *
 * StyleGAN3 `-t` / `-r` networks are not listed: the engine runs the StyleGAN2 architecture only.
 * The `stylegan2-*.pkl` files that NVIDIA hosts alongside StyleGAN3 are StyleGAN2 and are listed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

import { downloadFile, type DownloadProgress, type FetchLike } from './download.js';
import { FaceganError, invalidOption } from './errors.js';
import { cacheDir as defaultCacheDir } from './paths.js';

export interface Licence {
  /** The licence's own title. */
  readonly name: string;
  /** Where its text is published. */
  readonly url: string;
  /** Commercial use allowed? false for every NVIDIA checkpoint: research or evaluation only. */
  readonly commercial: false;
}

export interface CatalogSource {
  /** The page or file that lists the checkpoint. */
  readonly url: string;
  /** What it says, quoted or closely paraphrased, so the entry can be checked. */
  readonly citation: string;
}

export interface CatalogEntry {
  /** Short id used by `pullModel`, `resolveModel`, `loadGenerator` and the CLI: `[a-z0-9][a-z0-9-]*`. */
  readonly id: string;
  readonly title: string;
  /** NVIDIA's download URL of the network pickle. */
  readonly url: string;
  /** Output image size (square). */
  readonly resolution: number;
  /** Number of classes of a conditional generator (0: unconditional). */
  readonly cDim: number;
  /** Exact size of the file at `url`, where a source states it. */
  readonly bytes?: number;
  /** SHA-256 of the file at `url`, where a source states it. */
  readonly sha256?: string;
  readonly licence: Licence;
  readonly source: CatalogSource;
}

/** The NVIDIA licences the checkpoints are published under. Each one's section 3.3 restricts use to non-commercial
 * ("research or evaluation purposes only"). */
export const licences = {
  stylegan2Ada: {
    name: 'NVIDIA Source Code License for StyleGAN2 with Adaptive Discriminator Augmentation (ADA)',
    url: 'https://nvlabs.github.io/stylegan2-ada-pytorch/license.html',
    commercial: false,
  },
  stylegan3: {
    name: 'NVIDIA Source Code License for StyleGAN3',
    url: 'https://github.com/NVlabs/stylegan3/blob/main/LICENSE.txt',
    commercial: false,
  },
  stylegan2: {
    name: 'Nvidia Source Code License-NC',
    url: 'https://nvlabs.github.io/stylegan2/license.html',
    commercial: false,
  },
} as const satisfies Record<string, Licence>;

const ADA_PRETRAINED = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained';
const ADA_TRANSFER = `${ADA_PRETRAINED}/transfer-learning-source-nets`;
const NGC_STYLEGAN2 = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files';
const SG2_NETWORKS = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks';

const ADA_README = 'https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/README.md#data-repository';
const ADA_TRAIN = 'https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/train.py';
const SG3_README = 'https://github.com/NVlabs/stylegan3/blob/main/README.md#additional-material';
const SG2_README = 'https://github.com/NVlabs/stylegan2/blob/master/README.md';

function ada(id: string, file: string, title: string, resolution: number, says: string, cDim = 0): CatalogEntry {
  return {
    id,
    title,
    url: `${ADA_PRETRAINED}/${file}`,
    resolution,
    cDim,
    licence: licences.stylegan2Ada,
    source: { url: ADA_README, citation: `NVlabs/stylegan2-ada-pytorch README, "Data repository" → pretrained: "${file} | ${says}"` },
  };
}

function transfer(id: string, file: string, title: string, resolution: number, resumeName: string): CatalogEntry {
  return {
    id,
    title,
    url: `${ADA_TRANSFER}/${file}`,
    resolution,
    cDim: 0,
    licence: licences.stylegan2Ada,
    source: {
      url: ADA_TRAIN,
      citation:
        `NVlabs/stylegan2-ada-pytorch train.py, resume_specs['${resumeName}'] (the --resume=${resumeName} transfer-learning source net; ` +
        `README: "transfer-learning-source-nets | Models used as starting point for transfer learning")`,
    },
  };
}

function ngc(id: string, file: string, title: string, resolution: number): CatalogEntry {
  return {
    id,
    title,
    url: `${NGC_STYLEGAN2}/${file}`,
    resolution,
    cDim: 0,
    licence: licences.stylegan3,
    source: {
      url: SG3_README,
      citation: `NVlabs/stylegan3 README, "StyleGAN2 pre-trained models compatible with this codebase" (NGC nvidia:research:stylegan2): ${file}`,
    },
  };
}

function tf(id: string, file: string, title: string, says: string): CatalogEntry {
  return {
    id,
    title,
    url: `${SG2_NETWORKS}/${file}`,
    resolution: 256,
    cDim: 0,
    licence: licences.stylegan2,
    source: { url: SG2_README, citation: `NVlabs/stylegan2 README (TensorFlow release), pre-trained networks: "${file} | ${says}"` },
  };
}

/** Every checkpoint `pullModel` knows, in the order the docs list them. */
export const catalog: readonly CatalogEntry[] = Object.freeze(
  [
    ada('ffhq', 'ffhq.pkl', 'FFHQ 1024×1024 (StyleGAN2, paper config)', 1024, 'FFHQ at 1024x1024, trained using original StyleGAN2'),
    transfer('ffhq-512', 'ffhq-res512-mirror-stylegan2-noaug.pkl', 'FFHQ 512×512', 512, 'ffhq512'),
    transfer('ffhq-256', 'ffhq-res256-mirror-paper256-noaug.pkl', 'FFHQ 256×256', 256, 'ffhq256'),
    ngc('ffhqu', 'stylegan2-ffhqu-1024x1024.pkl', 'FFHQ-U (unaligned) 1024×1024', 1024),
    ngc('ffhqu-256', 'stylegan2-ffhqu-256x256.pkl', 'FFHQ-U (unaligned) 256×256', 256),
    ada('metfaces', 'metfaces.pkl', 'MetFaces 1024×1024 (ADA, transfer from FFHQ)', 1024, 'MetFaces at 1024x1024, transfer learning from FFHQ using ADA'),
    ngc('metfacesu', 'stylegan2-metfacesu-1024x1024.pkl', 'MetFaces-U (unaligned) 1024×1024', 1024),
    ada('afhq-cat', 'afhqcat.pkl', 'AFHQ Cat 512×512 (ADA)', 512, 'AFHQ Cat at 512x512, trained from scratch using ADA'),
    ada('afhq-dog', 'afhqdog.pkl', 'AFHQ Dog 512×512 (ADA)', 512, 'AFHQ Dog at 512x512, trained from scratch using ADA'),
    ada('afhq-wild', 'afhqwild.pkl', 'AFHQ Wild 512×512 (ADA)', 512, 'AFHQ Wild at 512x512, trained from scratch using ADA'),
    ngc('afhqv2', 'stylegan2-afhqv2-512x512.pkl', 'AFHQv2 512×512', 512),
    transfer('celebahq-256', 'celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl', 'CelebA-HQ 256×256', 256, 'celebahq256'),
    transfer('lsun-dog-256', 'lsundog-res256-paper256-kimg100000-noaug.pkl', 'LSUN Dog 256×256', 256, 'lsundog256'),
    ada('brecahad', 'brecahad.pkl', 'BreCaHAD 512×512 (ADA)', 512, 'BreCaHAD at 512x512, trained from scratch using ADA'),
    ada('cifar10', 'cifar10.pkl', 'CIFAR-10 32×32, class-conditional (10 classes)', 32, 'Class-conditional CIFAR-10 at 32x32', 10),
    tf('lsun-cat-256', 'stylegan2-cat-config-f.pkl', 'LSUN Cat 256×256 (StyleGAN2 config F, TensorFlow pickle)', 'StyleGAN2 for LSUN Cat dataset at 256×256'),
    tf('lsun-church-256', 'stylegan2-church-config-f.pkl', 'LSUN Church 256×256 (StyleGAN2 config F, TensorFlow pickle)', 'StyleGAN2 for LSUN Church dataset at 256×256'),
    tf('lsun-horse-256', 'stylegan2-horse-config-f.pkl', 'LSUN Horse 256×256 (StyleGAN2 config F, TensorFlow pickle)', 'StyleGAN2 for LSUN Horse dataset at 256×256'),
  ].map((entry) => Object.freeze({ ...entry, licence: Object.freeze({ ...entry.licence }), source: Object.freeze(entry.source) })),
);

/** The catalogue entry for `id`; throws ERR_INVALID_OPTION listing the valid ids. */
export function findModel(id: string): CatalogEntry {
  const entry = typeof id === 'string' ? catalog.find((m) => m.id === id) : undefined;
  if (!entry) throw unknownModel(id);
  return entry;
}

function unknownModel(id: unknown): FaceganError {
  const shown = typeof id === 'string' ? `'${id}'` : String(id);
  return new FaceganError('ERR_INVALID_OPTION', `Unknown model ${shown}. Valid ids: ${catalog.map((m) => m.id).join(', ')}`);
}

/** The file name of an entry's download (the last segment of its official URL), e.g. `ffhq.pkl`. */
export function downloadFileName(entry: CatalogEntry): string {
  return decodeURIComponent(new URL(entry.url).pathname.split('/').pop() ?? '');
}

/**
 * The URL to fetch an entry from: `<base>/<file name>` when a base URL is given (the `baseUrl`
 * option, else `FACEGAN_CATALOG_BASE_URL`), for mirrors and tests; otherwise NVIDIA's URL.
 */
export function modelUrl(entry: CatalogEntry, baseUrl: string | undefined = process.env.FACEGAN_CATALOG_BASE_URL): string {
  if (baseUrl === undefined || baseUrl === '') return entry.url;
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw invalidOption('baseUrl (or FACEGAN_CATALOG_BASE_URL)', 'an http(s) URL', baseUrl);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidOption('baseUrl (or FACEGAN_CATALOG_BASE_URL)', 'an http(s) URL', baseUrl);
  }
  return `${baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(downloadFileName(entry))}`;
}

/**
 * The licence notice shown before a download: who publishes the weights, under which licence,
 * and that they are for non-commercial use (research or evaluation) only.
 */
export function licenceNotice(entry: CatalogEntry): string {
  return [
    `${entry.title} ('${entry.id}') is a pretrained network published by NVIDIA under the ${entry.licence.name}:`,
    `  ${entry.licence.url}`,
    'NON-COMMERCIAL USE ONLY: the licence allows use "for research or evaluation purposes only".',
    'Converted copies are derivative works under the same terms. For commercial licensing see',
    '  https://www.nvidia.com/en-us/research/inquiries/',
  ].join('\n');
}

/** What a `licenceAccepted` callback is shown. */
export interface LicenceTerms {
  readonly id: string;
  readonly title: string;
  readonly licence: Licence;
  /** The text of `licenceNotice()`. */
  readonly notice: string;
}

export interface PullOptions {
  /** Download progress (not called when the model is already cached). */
  onProgress?: (progress: DownloadProgress) => void;
  /** Cancels the download (the `.part` is kept for the next call to resume). */
  signal?: AbortSignal;
  /** Converts the downloaded checkpoint to a facegan safetensors file; default: `convertCheckpoint` of `./convert/index.js`. */
  convert?: (src: string, dst: string) => Promise<void>;
  /**
   * undefined (default): the licence notice goes to `log` and the download goes ahead.
   * true: the caller has shown the terms already (a one-line reminder is logged).
   * false: refuse (ERR_INVALID_OPTION) before any network access.
   * A function: called with the terms before any network access; the download goes ahead only if it returns true.
   */
  licenceAccepted?: boolean | ((terms: LicenceTerms) => boolean | Promise<boolean>);
  /**
   * Where messages go: the licence notice (before any network access), then the steps. Default:
   * nowhere — the library prints nothing; show the terms yourself (`licenceNotice(entry)`, or a
   * `licenceAccepted` callback). The CLI passes a function that writes to stderr.
   */
  log?: (message: string) => void;
  /** A download that makes no progress for this long fails with ERR_DOWNLOAD (see `downloadFile`); default 60000. */
  stallTimeoutMs?: number;
  /** Fetch catalogue files from `<baseUrl>/<file name>` instead of NVIDIA (overrides FACEGAN_CATALOG_BASE_URL). */
  baseUrl?: string;
  /** The cache directory (overrides FACEGAN_HOME and the platform default). */
  cacheDir?: string;
  /** Keep the downloaded `.pkl` in `<cache>/downloads` after conversion (default false: it is deleted). */
  keepDownload?: boolean;
  /** Automatic resumes after a network failure (default 2). */
  retries?: number;
  /** The fetch to use (tests, proxies). */
  fetchImpl?: FetchLike;
}

/** The converter, imported lazily: it is only loaded when something is actually converted. */
async function defaultConvert(src: string, dst: string): Promise<void> {
  const { convertCheckpoint } = await import('./convert/index.js');
  await convertCheckpoint(src, dst);
}

const ID_PATTERN = /^[a-z0-9][a-z0-9-]*$/;

function checkEntry(entry: CatalogEntry): CatalogEntry {
  if (entry === null || typeof entry !== 'object') throw invalidOption('model', 'a catalogue id or entry', entry);
  if (typeof entry.id !== 'string' || !ID_PATTERN.test(entry.id)) throw invalidOption('model.id', 'an id matching [a-z0-9][a-z0-9-]*', entry.id);
  let url: URL | undefined;
  try {
    url = new URL(entry.url);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw invalidOption('model.url', 'an http(s) URL', entry.url);
  if (!entry.licence || typeof entry.licence.name !== 'string' || typeof entry.licence.url !== 'string') {
    throw invalidOption('model.licence', 'a licence { name, url, commercial }', entry.licence);
  }
  if (typeof entry.title !== 'string') throw invalidOption('model.title', 'a string', entry.title);
  return entry;
}

function checkPullOptions(options: PullOptions): void {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
  const { convert, licenceAccepted, log, cacheDir, keepDownload } = options;
  if (convert !== undefined && typeof convert !== 'function') throw invalidOption('convert', 'a function', convert);
  if (licenceAccepted !== undefined && typeof licenceAccepted !== 'boolean' && typeof licenceAccepted !== 'function') {
    throw invalidOption('licenceAccepted', 'a boolean or a function', licenceAccepted);
  }
  if (log !== undefined && typeof log !== 'function') throw invalidOption('log', 'a function', log);
  if (cacheDir !== undefined && (typeof cacheDir !== 'string' || cacheDir === '')) throw invalidOption('cacheDir', 'a directory path', cacheDir);
  if (keepDownload !== undefined && typeof keepDownload !== 'boolean') throw invalidOption('keepDownload', 'a boolean', keepDownload);
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

function modelFile(entry: CatalogEntry, options: PullOptions): string {
  return path.join(options.cacheDir ?? defaultCacheDir(), 'models', `${entry.id}.safetensors`);
}

/** The converted model's path if it is in the cache, else undefined. Never touches the network. */
export async function cachedModel(model: string | CatalogEntry, options: Pick<PullOptions, 'cacheDir'> = {}): Promise<string | undefined> {
  const entry = typeof model === 'string' ? findModel(model) : checkEntry(model);
  const file = modelFile(entry, options);
  return (await isFile(file)) ? file : undefined;
}

/** Pulls in progress in this process, by target path: a second pull of the same model waits for the first. */
const pulling = new Map<string, Promise<string>>();

/**
 * Makes a catalogue model available as `<cache>/models/<id>.safetensors` and returns that path.
 *
 * If it is cached, returns at once (no network). Otherwise: shows the licence (see
 * `licenceAccepted`), downloads the `.pkl` into `<cache>/downloads/` (resuming an interrupted
 * download), converts it once with `convert`, moves the result into place atomically and deletes
 * the `.pkl` (unless `keepDownload`).
 */
export async function pullModel(model: string | CatalogEntry, options: PullOptions = {}): Promise<string> {
  checkPullOptions(options);
  const entry = typeof model === 'string' ? findModel(model) : checkEntry(model);
  const target = modelFile(entry, options);
  if (await isFile(target)) return target;

  const running = pulling.get(target);
  if (running) return running;
  const job = pull(entry, target, options).finally(() => pulling.delete(target));
  pulling.set(target, job);
  return job;
}

async function pull(entry: CatalogEntry, target: string, options: PullOptions): Promise<string> {
  const log = options.log ?? ((): void => undefined);
  const notice = licenceNotice(entry);
  const { licenceAccepted } = options;

  if (licenceAccepted === false) {
    throw new FaceganError('ERR_INVALID_OPTION', `The licence of '${entry.id}' was not accepted; nothing was downloaded.\n${notice}`);
  }
  if (typeof licenceAccepted === 'function') {
    const accepted = await licenceAccepted({ id: entry.id, title: entry.title, licence: entry.licence, notice });
    if (accepted !== true) {
      throw new FaceganError('ERR_INVALID_OPTION', `The licence of '${entry.id}' was not accepted; nothing was downloaded.`);
    }
    log(`Licence accepted: ${entry.licence.name} (non-commercial use only).`);
  } else if (licenceAccepted === true) {
    log(`${entry.title}: ${entry.licence.name}, non-commercial use only (${entry.licence.url}).`);
  } else {
    log(notice);
  }

  const cache = options.cacheDir ?? defaultCacheDir();
  const url = modelUrl(entry, options.baseUrl ?? process.env.FACEGAN_CATALOG_BASE_URL);
  const download = path.join(cache, 'downloads', downloadFileName(entry));
  log(`Downloading ${url}\n  to ${download}`);
  await downloadFile(url, download, {
    expectedBytes: entry.bytes,
    sha256: entry.sha256,
    onProgress: options.onProgress,
    signal: options.signal,
    retries: options.retries ?? 2,
    fetchImpl: options.fetchImpl,
    stallTimeoutMs: options.stallTimeoutMs,
  });

  if (options.signal?.aborted) {
    throw new FaceganError('ERR_DOWNLOAD', `Pulling '${entry.id}' was aborted before conversion`, { cause: options.signal.reason });
  }
  await fs.mkdir(path.dirname(target), { recursive: true });
  const temporary = path.join(path.dirname(target), `.${entry.id}.${process.pid}.tmp.safetensors`);
  log(`Converting ${path.basename(download)} to ${target}`);
  try {
    await (options.convert ?? defaultConvert)(download, temporary);
    if (!(await isFile(temporary))) {
      throw new FaceganError('ERR_FILE_NOT_FOUND', `The converter finished without writing ${temporary}`);
    }
    await fs.rename(temporary, target);
  } catch (error) {
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
  if (!options.keepDownload) await fs.rm(download, { force: true }).catch(() => undefined);
  return target;
}

/**
 * A path that exists → that path. A catalogue id → its cached safetensors file, pulled first if
 * needed (`options` as for `pullModel`). Anything else throws: ERR_FILE_NOT_FOUND for something
 * that looks like a path, ERR_INVALID_OPTION (listing the valid ids) for anything else.
 */
export async function resolveModel(idOrPath: string, options: PullOptions = {}): Promise<string> {
  if (typeof idOrPath !== 'string' || idOrPath === '') throw invalidOption('model', 'a file path or a catalogue id', idOrPath);
  if (await isFile(idOrPath)) return idOrPath;
  if (catalog.some((m) => m.id === idOrPath)) return pullModel(idOrPath, options);
  if (/[\\/]/.test(idOrPath) || /\.(pkl|safetensors|pt|pth|json|bin)$/i.test(idOrPath)) {
    throw new FaceganError('ERR_FILE_NOT_FOUND', `No such file: '${idOrPath}'`);
  }
  throw unknownModel(idOrPath);
}
