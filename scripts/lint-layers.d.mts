// Types of scripts/lint-layers.mjs, for the module-map test.
/** layer → the layers it may import. */
export declare const LAYERS: Record<string, string[]>;
/** The layer of a repository-relative path; undefined outside the layered code. */
export declare function layerOf(path: string): string | undefined;
declare const plugin: { meta: { name: string }; rules: Record<string, unknown> };
export default plugin;
