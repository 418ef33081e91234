/**
 * Timing statistics, defined as benchmark.js defines them (mean, sample standard deviation,
 * standard error of the mean, margin of error at 95 % with Student's t, relative margin of error
 * in %), for samples collected outside benchmark.js (alternating engines call by call).
 */

// Two-sided 95 % critical values of Student's t by degrees of freedom (standard table).
const T95 = [
  NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

function tCritical(df) {
  if (df < 1) return NaN;
  return df < T95.length ? T95[df] : 1.96;
}

/** Statistics of `sample` (seconds per call). */
export function summarize(sample) {
  const n = sample.length;
  const mean = sample.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? sample.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : 0;
  const deviation = Math.sqrt(variance);
  const sem = deviation / Math.sqrt(n);
  const moe = n > 1 ? sem * tCritical(n - 1) : NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { n, mean, median, min: sorted[0], max: sorted[n - 1], deviation, sem, moe, rme: (moe / mean) * 100, sample };
}

/** benchmark.js's own statistics (bench.stats, seconds per call) plus the median and extremes. */
export function fromBenchmark(stats) {
  const own = summarize(stats.sample);
  return { ...own, mean: stats.mean, deviation: stats.deviation, sem: stats.sem, moe: stats.moe, rme: stats.rme };
}
