// Small DOM helpers shared by the pages.

export function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el;
}

export function $input(id: string): HTMLInputElement {
  return $(id) as HTMLInputElement;
}

export function $video(id: string): HTMLVideoElement {
  return $(id) as HTMLVideoElement;
}

/** Up to two initials of a display name ("Ada Lovelace" → "AL", "bob" → "B"). */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const letters = words.slice(0, 2).map((w) => [...w][0] ?? '');
  return letters.join('').toUpperCase() || '?';
}

/** A stable small number (0–5) for a string, to pick an avatar colour. */
export function hue(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h % 6;
}

export function queryParams(): URLSearchParams {
  return new URLSearchParams(window.location.search);
}
