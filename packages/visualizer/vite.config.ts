import { defineConfig } from "vite";

// The page: web/ → dist/web (served by src/server.ts). Everything is bundled: no CDN, no fonts.
export default defineConfig({
  root: "web",
  base: "./",
  logLevel: "warn",
  build: {
    outDir: "../dist/web",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2_500,
    sourcemap: false,
  },
});
