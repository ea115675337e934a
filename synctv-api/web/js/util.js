// Small helpers every part of the page uses.
export const $ = (id) => document.getElementById(id);
export const wallNow = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
