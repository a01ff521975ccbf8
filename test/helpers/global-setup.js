// Builds dist/cli.js once per jest run so CLI tests exercise the same bundle users run.
// Set MATFORMER_SKIP_BUILD=1 to reuse an existing build.
const { execSync } = require('child_process');
const path = require('path');

module.exports = async function globalSetup() {
  if (process.env.MATFORMER_SKIP_BUILD === '1') return;
  execSync('npm run build', { cwd: path.resolve(__dirname, '..', '..'), stdio: 'inherit' });
};
