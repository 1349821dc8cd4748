// A resolve hook for Node's ES module loader (registered by readme_preload.mjs).
// Apollo Client 3 has no "exports" map, so Node refuses `import ... from
// "@apollo/client/core"` (a directory); the bundlers apps run it under resolve
// such a directory to its index.js, and so does this hook.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (error.code !== "ERR_UNSUPPORTED_DIR_IMPORT") throw error;
    return next(`${specifier}/index.js`, context);
  }
}
