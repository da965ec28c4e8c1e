// The layers of DESIGN.md: imports point down only
// (lib <- blueprints <- drivers <- appliance <- api <- cli; test and bench may import anything).
const layers = ['lib', 'blueprints', 'drivers', 'appliance', 'api', 'cli'];

export default {
  forbidden: layers.map((layer, i) => ({
    name: `${layer}-imports-down-only`,
    comment: `${layer}/ may import only from ${layers.slice(0, i).join(', ') || 'nothing of ours'} (DESIGN.md, Layout)`,
    severity: 'error',
    from: { path: `^${layer}/` },
    to: { path: `^(${layers.slice(i + 1).join('|') || '$^'})/` },
  })).filter((rule) => rule.to.path !== '^($^)/'),
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
