// One formatter for probabilities, shared by the page's script (app.js imports it as an ES
// module) and the server's templates (server/views.ts), so that a caption reads the same whether
// the page streamed it or rendered it without JavaScript.

/**
 * A probability as a percentage for people: one decimal, none near 100 %, and two significant
 * digits below 0.1 %, so that a whole caption's small probability (a product of many words'
 * probabilities) does not read as "0%". With `digits`, a rate (a figure such as "exact match")
 * with exactly that many decimals: 0.998 reads "99.8%", never a rounded-up "100%".
 * @param {number} p
 * @param {number} [digits]
 * @returns {string}
 */
export function formatPercent(p, digits) {
  if (digits !== undefined) return `${(p * 100).toFixed(digits)}%`;
  if (!(p > 0)) return '0%';
  if (p < 1e-6) return '<0.0001%';
  if (p < 0.001) return `${Number((p * 100).toPrecision(2))}%`;
  return `${(p * 100).toFixed(p >= 0.995 ? 0 : 1)}%`;
}
