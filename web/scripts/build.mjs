// Builds the browser app into web/dist:
//   src/stream.ts, src/watch.ts  -> dist/assets/{stream,watch}.js  (esbuild bundles, ES2020, minified, sourcemaps)
//   src/*.html                   -> dist/*.html
//   src/*.css                    -> dist/assets/*.css
// Usage: node scripts/build.mjs
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const assets = join(dist, 'assets');

await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

await build({
  entryPoints: [join(src, 'stream.ts'), join(src, 'watch.ts')],
  outdir: assets,
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});

const files = await readdir(src);
for (const f of files) {
  if (f.endsWith('.html')) await copyFile(join(src, f), join(dist, f));
  else if (f.endsWith('.css')) await copyFile(join(src, f), join(assets, f));
}
console.log(`built ${dist}`);
