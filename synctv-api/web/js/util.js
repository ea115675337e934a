// Small helpers every part of the page uses, and the <video> element. This module imports
// nothing, so it is evaluated first and what it defines may be used at the top level of
// any other module (the others import each other in cycles, where that is not safe).
export const $ = (id) => document.getElementById(id);
export const video = $('player');
export const wallNow = () => performance.timeOrigin + performance.now();
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
